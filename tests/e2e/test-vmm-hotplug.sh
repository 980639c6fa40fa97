#!/bin/bash
# Hot add and remove while the guest runs records: a LUN added through the
# control socket is found by the guest (ENUMERATE_BUS -> REPORT LUNS) and
# written; LUN 0 removed under I/O gives errors (or a rescan) for LUN 0
# only, no crash, and the records keep going on LUN 1; quit through the
# control socket stops the guest cleanly (exit 0); both images check clean
# with what the guest saw flushed.  VMM_USER_MODE=1: the user-mode backend.
. "$(dirname "$0")/vmm-common.bash"
requires_kvm
requires python3

"$VHDTOOL" create "$dir/a.vhd" 32M >/dev/null || fail "create a"
"$VHDTOOL" create -t fixed "$dir/b.vhd" 16M >/dev/null || fail "create b"
start_vmm --mem 64M --timeout 25 --workload records,flush_ms=100 \
	--disk "$dir/a.vhd,lun=0" --control "$dir/c.sock"
wait_console 10 'records: flushed 0:[0-9]+' || fail "no records on LUN 0"
ans=$(ctl "$dir/c.sock" '{"cmd":"status"}' "{\"cmd\":\"disk-add\",\"path\":\"$dir/b.vhd\",\"lun\":1}")
echo "$ans" | sed -n 1p | grep -q '"state":"running"' || fail "status: $ans"
echo "$ans" | sed -n 2p | grep -q '"ok":true,"lun":1' || fail "disk-add: $ans"
wait_console 10 'records: lun 1: 32768 blocks' || fail "the guest did not find the new LUN"
wait_console 10 'records: flushed 0:[0-9]+ 1:[0-9]+' || fail "no records on the new LUN"
f1=$(flushed 1)
# remove LUN 0 while its I/O runs
ans=$(ctl "$dir/c.sock" '{"cmd":"disk-remove","lun":0}' '{"cmd":"disks"}')
echo "$ans" | sed -n 1p | grep -q '"ok":true' || fail "disk-remove: $ans"
echo "$ans" | sed -n 2p | grep -q '"lun":0' && fail "LUN 0 still listed: $ans"
wait_console 10 'records: lun 0( removed|: (write|read|flush) failed)' || fail "the guest did not notice the removal"
n=$(grep -c 'records: flushed' "$dir/err")
wait_console 10 "records: flushed 1:$((f1 + 1))|records: flushed 1:[0-9]{$((${#f1} + 1)),}" ||
	fail "records stopped on LUN 1 after LUN 0 went"
grep -E 'records: lun 1: .*failed|MISMATCH' "$dir/err" && fail "errors on LUN 1"
ans=$(ctl "$dir/c.sock" '{"cmd":"quit"}')
echo "$ans" | grep -q '"ok":true' || fail "quit: $ans"
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after quit"
grep -q "records: stopped: .* 0 mismatches" "$dir/err" || fail "guest did not stop cleanly"
check_records "$dir/a.vhd" 0
check_records "$dir/b.vhd" 1
grep -h "records," "$dir/check" | sed 's/^/  /'
echo ok
