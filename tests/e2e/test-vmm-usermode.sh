#!/bin/bash
# The built-in guest and the VMM's console, exit, fault, doorbell and
# wake-up paths on the user-mode backend (vmm-mini run --user-mode: no KVM,
# the guest's code in host threads), so that they are tested on machines
# without /dev/kvm too: the boot, fault and doorbell tests run again with
# VMM_USER_MODE=1.  A guest store below 1 MiB (the VM's supervisor-only
# system area) faults as in the VM.
. "$(dirname "$0")/vmm-common.bash"
here=$(dirname "$0")

for t in boot-hello fault doorbell; do
	VMM_USER_MODE=1 "$here/test-vmm-$t.sh" >"$dir/$t.log" 2>&1 ||
		{ cat "$dir/$t.log"; fail "test-vmm-$t.sh in user mode"; }
done

VMM_USER_MODE=1
USER_MODE_ARG=(--user-mode)
run_vmm 15 --workload fault,0x9000 --timeout 10
[ "$rc" = 1 ] || fail "store to the system area exited $rc"
grep -q 'guest fault: vector 14 (#PF) error 0x6 at RIP 0x1[0-9a-f]* CR2 0x9000' "$dir/err" ||
	fail "store to the system area not reported"

# A guest that never exits is stopped by the time limit, not left hanging.
start=$(date +%s)
run_vmm 15 --workload spin,100000000000 --timeout 2
[ "$rc" = 1 ] || fail "endless guest exited $rc"
grep -q 'still running after 2000 ms' "$dir/err" || fail "time limit not reported"
[ $(( $(date +%s) - start )) -lt 8 ] || fail "time limit took too long"
echo "ok"
