#!/bin/bash
# The guest's code runs natively, not in KVM's instruction emulator: the
# VM's insn_emulation statistic after `spin` with 2e8 rounds exceeds the one
# after 1e3 rounds by at most a small constant (the CPL0 stubs run the same
# few instructions in both), although the workload ran 2e5 times longer.
. "$(dirname "$0")/vmm-common.bash"
requires_kvm

run_vmm 15 --workload spin,1000 --stats --timeout 10
[ "$rc" = 0 ] || fail "short spin exited $rc"
small=$(stat insn_emulation)
[ -n "$small" ] || skip "KVM gives no insn_emulation statistic"

run_vmm 18 --workload spin,200000000 --stats --timeout 15
[ "$rc" = 0 ] || fail "long spin exited $rc"
big=$(stat insn_emulation)
grep -q '^guest: spin: 200000000 rounds' "$dir/err" || fail "spin did not report"
echo "insn_emulation: $small after 1e3 rounds, $big after 2e8 rounds"
[ "$big" -le $((small + 64)) ] || fail "insn_emulation grew from $small to $big: guest code was emulated"
echo "ok"
