#!/bin/bash
# Doorbell round trips: the guest rings an ioeventfd port, the VMM's echo
# thread wakes it with an irqfd interrupt, the guest sleeps (INT3 -> CPL0
# `sti; hlt; iretq`) until then.  1000 round trips complete and the
# average is reported; `exits` also measures one exit of each kind.
. "$(dirname "$0")/vmm-common.bash"
requires_kvm

run_vmm 18 --workload doorbell,1000 --stats --timeout 15
[ "$rc" = 0 ] || fail "doorbell workload exited $rc"
line=$(grep '^guest: doorbell: 1000 round trips' "$dir/err") || fail "no round-trip report"
echo "$line"
grep '^stats:' "$dir/err"

run_vmm 18 --workload exits,1000 --stats --timeout 15
[ "$rc" = 0 ] || fail "exits workload exited $rc"
grep -q '^guest: exits: OUT to an ioeventfd port' "$dir/err" || fail "no ioeventfd measure"
grep '^guest: \|^stats:' "$dir/err"
echo "ok"
