#!/bin/bash
# The records workload on pass-through loop devices with 512- and
# 4096-byte logical sectors (LUNs 0 and 1 of one VM): the guest sees each
# sector size (READ CAPACITY 16), writes, flushes and verifies; after
# SIGTERM every record is on the devices.  Loop devices are always detached
# (at_exit).  VMM_USER_MODE=1: the user-mode backend
# (test-vmm-records-loop-usermode.sh).
. "$(dirname "$0")/vmm-common.bash"
requires_kvm
requires python3 losetup
[ "$(id -u)" = 0 ] || skip "loop devices need root"

loops=()
detach_loops() { for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done; loops=(); }
at_exit detach_loops

for ss in 512 4096; do
	truncate -s 32M "$dir/back$ss.raw" || fail truncate
	l=$(losetup -f --show --direct-io=on --sector-size "$ss" "$dir/back$ss.raw" 2>/dev/null) ||
		l=$(losetup -f --show --sector-size "$ss" "$dir/back$ss.raw" 2>/dev/null) ||
		skip "cannot attach a loop device with $ss-byte sectors"
	loops+=("$l")
done

start_vmm --mem 64M --timeout 25 --workload records,flush_ms=200 \
	--disk "${loops[0]},lun=0" --disk "${loops[1]},lun=1"
wait_console 15 'records: flushed 0:[0-9]+ 1:[0-9]+' || fail "no flushed records on both LUNs"
grep -q "records: lun 0: 65536 blocks of 512 bytes" "$dir/err" || fail "LUN 0 is not 512-byte sectors"
grep -q "records: lun 1: 8192 blocks of 4096 bytes" "$dir/err" || fail "LUN 1 is not 4096-byte sectors"
sleep 1
stop_vmm TERM
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after SIGTERM"
grep -q "records: stopped: .* 0 mismatches, 0 I/O errors" "$dir/err" || fail "guest did not stop cleanly"
check_records "${loops[0]}" 0
check_records "${loops[1]}" 1
grep -h "records," "$dir/check" | sed 's/^/  /'
detach_loops
echo ok
