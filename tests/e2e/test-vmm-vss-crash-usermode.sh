#!/bin/bash
# test-vmm-vss-crash.sh on the user-mode backend (runs without /dev/kvm).
VMM_USER_MODE=1 exec "$(dirname "$0")/test-vmm-vss-crash.sh"
