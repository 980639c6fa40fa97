#!/bin/bash
# Snapshot and merge while the guest runs records on a dynamic VHD: the
# snapshot drains the LUN, creates NAME-snap1.vhd beside the image and
# switches the writes to it (both paths in the answer); more records land
# in the child while the parent stays as it was; the merge folds the child
# back while the guest keeps running (its requests held meanwhile), the
# child's file goes, and the LUN serves the original file again; after
# quit no record is lost and the image checks clean.
# VMM_USER_MODE=1: the user-mode backend.
. "$(dirname "$0")/vmm-common.bash"
requires_kvm
requires python3

img=$dir/a.vhd
"$VHDTOOL" create "$img" 32M >/dev/null || fail "create"
start_vmm --mem 64M --timeout 25 --workload records,flush_ms=100 \
	--disk "$img,lun=0" --control "$dir/c.sock"
wait_console 10 'records: flushed 0:[0-9]+' || fail "no records"
ans=$(ctl "$dir/c.sock" '{"cmd":"snapshot","lun":0}')
echo "$ans" | grep -q "\"ok\":true,\"lun\":0,\"parent\":\"$img\",\"child\":\"$dir/a-snap1.vhd\"" ||
	fail "snapshot: $ans"
[ -f "$dir/a-snap1.vhd" ] || fail "no child file"
f0=$(flushed 0)
sum=$(sha256sum <"$img")
wait_console 10 "records: flushed 0:$((f0 + 64))" ||
	wait_console 5 "records: flushed 0:[0-9]{$((${#f0} + 1)),}" || true
sleep 1
[ "$(flushed 0)" -gt "$f0" ] || fail "no records after the snapshot"
[ "$(sha256sum <"$img")" = "$sum" ] || fail "the parent changed after the snapshot"
ans=$(ctl "$dir/c.sock" '{"cmd":"disks"}')
echo "$ans" | grep -q "\"top\":\"$dir/a-snap1.vhd\",\"snapshots\":1" || fail "disks: $ans"
ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}')
echo "$ans" | grep -q "\"ok\":true,\"lun\":0,\"into\":\"$img\",\"merged\":\"$dir/a-snap1.vhd\"" ||
	fail "merge: $ans"
[ -f "$dir/a-snap1.vhd" ] && fail "the child is still there after the merge"
f1=$(flushed 0)
sleep 1
wait_console 10 "records: flushed 0:[0-9]{$((${#f1}))}" || true
[ "$(flushed 0)" -gt "$f1" ] || fail "no records after the merge"
ans=$(ctl "$dir/c.sock" '{"cmd":"disks"}' '{"cmd":"quit"}')
echo "$ans" | sed -n 1p | grep -q "\"top\":\"$img\",\"snapshots\":0" || fail "disks after merge: $ans"
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after quit"
grep -q "records: stopped: .* 0 mismatches, 0 I/O errors" "$dir/err" || fail "guest did not stop cleanly"
check_records "$img" 0
grep -h "records," "$dir/check" | sed 's/^/  /'
echo ok
