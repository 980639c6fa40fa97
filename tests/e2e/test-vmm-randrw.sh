#!/bin/bash
# The randrw workload through the whole path (fixed VHD): random 4 KiB
# reads and writes at queue depth 16 and 1 MiB sequential reads, each for
# a second; the guest reports IOPS and RDTSC latency percentiles and no
# errors; the image checks clean.  VMM_USER_MODE=1: the user-mode backend.
. "$(dirname "$0")/vmm-common.bash"
requires_kvm

"$VHDTOOL" create -t fixed "$dir/f.vhd" 32M >/dev/null || fail "create"
for w in "bs=4096,qd=16,read=50" "bs=1048576,qd=4,seq=1"; do
	run_vmm 20 --mem 64M --timeout 15 --disk "$dir/f.vhd" --workload "randrw,seconds=1,$w"
	[ "$rc" = 0 ] || fail "randrw $w exited $rc"
	grep -Eq "randrw: lun 0, .* [1-9][0-9]* IOPS, [0-9]+ MiB/s, 0 errors" "$dir/err" || fail "randrw $w: no IOPS"
	grep -Eq "randrw: latency us: p50 [0-9]+, p90 [0-9]+, p99 [0-9]+, p99.9 [0-9]+, max [0-9]+" "$dir/err" ||
		fail "randrw $w: no latency percentiles"
	grep "randrw:" "$dir/err" | sed 's/^/  /'
done
"$VHDTOOL" check "$dir/f.vhd" >/dev/null || fail "image damaged"

# Placement: on two or more CPUs the vCPU thread runs on a CPU of its own,
# apart from the service threads (storvsp, aio, bus: everything else), which
# share one.  (vmm-mini run pins its own thread to the service CPU before it
# starts the vCPUs: they once inherited that pin and ran on the same CPU.)
if [ "$(nproc)" -ge 2 ]; then
	start_vmm --mem 64M --timeout 15 --disk "$dir/f.vhd" --workload "randrw,seconds=3,bs=4096,qd=4"
	wait_console 10 "storvsc: protocol" || fail "guest did not start its I/O"
	vcpu= others=
	for t in /proc/$pid/task/*; do
		cpus=$(sed -n 's/^Cpus_allowed_list:\t*//p' "$t/status")
		case $(cat "$t/comm") in vcpu0) vcpu=$cpus ;; vmm-mini) others="$others $cpus" ;; esac
	done
	[ -n "$vcpu" ] || fail "no thread named vcpu0"
	for c in $others; do
		[ "$c" != "$vcpu" ] || fail "a service thread shares the vCPU's CPU $vcpu (others:$others)"
	done
	echo "  vcpu0 on CPU $vcpu, the others on$others"
	wait "$pid"
	pid=
fi
echo ok
