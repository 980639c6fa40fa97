#!/bin/bash
# test-backup-live.sh on the user-mode backend (runs without /dev/kvm).
VMM_USER_MODE=1 exec "$(dirname "$0")/test-backup-live.sh"
