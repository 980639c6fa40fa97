#!/bin/bash
# The built-in guest boots at CPL3 on KVM, prints its greeting through the
# console port (prefixed "guest: ") and exits 0 through the exit port; the
# same with two vCPUs (the second one reports that it came up).
. "$(dirname "$0")/vmm-common.bash"
requires_kvm

run_vmm 15 --workload hello --timeout 10
[ "$rc" = 0 ] || fail "hello exited $rc"
grep -q '^guest: hello from the guest: 1 of 1 vCPUs up' "$dir/err" || fail "no greeting"

nproc_kvm=$(getconf _NPROCESSORS_ONLN)
if [ "$nproc_kvm" -ge 2 ]; then
	run_vmm 15 --workload hello --cpus 2 --timeout 10
	[ "$rc" = 0 ] || fail "hello on 2 vCPUs exited $rc"
	grep -q '^guest: hello from the guest: 2 of 2 vCPUs up' "$dir/err" ||
		fail "second vCPU did not come up"
fi

run_vmm 15 --workload no-such-thing --timeout 10
[ "$rc" = 2 ] || fail "unknown workload exited $rc, want 2"
grep -q 'unknown workload' "$dir/err" || fail "unknown workload not reported"
echo "ok"
