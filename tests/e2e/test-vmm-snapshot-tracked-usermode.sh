#!/bin/bash
# Change tracking sits above a LUN's switch layer: a LUN with IMAGE.ctk
# can take a snapshot and a merge while the guest writes records, and
# every write is tracked whichever file takes it (the image, the snapshot
# child, the image again after the merge).  After quit the tracking file
# is still valid: the next backup is incremental, and its restore equals
# the image.  User-mode backend (no KVM needed).
VMM_USER_MODE=1
. "$(dirname "$0")/vmm-common.bash"
requires python3

img=$dir/a.vhd
repo=$dir/repo
"$VHDTOOL" create "$img" 32M >/dev/null || fail "create"
"$VHDTOOL" backup init "$repo" >/dev/null || fail "backup init"
"$VHDTOOL" backup create "$repo" "$img" >/dev/null 2>"$dir/bk" || fail "first backup: $(cat "$dir/bk")"
[ -f "$img.ctk" ] || fail "no a.vhd.ctk after the first backup"

# more_records WHEN: the guest flushes more records on LUN 0 (bounded wait).
more_records() {
	local f
	f=$(flushed 0)
	wait_console 15 "records: flushed 0:$((f + 16))" ||
		wait_console 5 "records: flushed 0:[0-9]{$((${#f} + 1)),}" || true
	[ "$(flushed 0)" -gt "$f" ] || fail "no records $1"
}

start_vmm --mem 64M --timeout 40 --workload records,flush_ms=100 \
	--disk "$img,lun=0" --control "$dir/c.sock"
wait_console 15 'records: flushed 0:[0-9]+' || fail "no records"
ans=$(ctl "$dir/c.sock" '{"cmd":"disks"}')
echo "$ans" | grep -q '"tracked":true' || fail "LUN 0 not tracked: $ans"
ans=$(ctl "$dir/c.sock" '{"cmd":"snapshot","lun":0}')
echo "$ans" | grep -q "\"ok\":true,\"lun\":0,\"parent\":\"$img\",\"child\":\"$dir/a-snap1.vhd\"" ||
	fail "snapshot of a tracked LUN: $ans"
more_records "after the snapshot"
ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}')
echo "$ans" | grep -q '"ok":true' || fail "merge: $ans"
more_records "after the merge"
ans=$(ctl "$dir/c.sock" '{"cmd":"disks"}' '{"cmd":"quit"}')
echo "$ans" | sed -n 1p | grep -q '"snapshots":0,.*"tracked":true' || fail "disks after merge: $ans"
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after quit"
check_records "$img" 0

"$VHDTOOL" backup create "$repo" "$img" >"$dir/bk2" 2>&1 || fail "second backup: $(cat "$dir/bk2")"
kind=$("$VHDTOOL" backup show --json "$repo" latest | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["kind"], j.get("reason") or "")')
case $kind in incremental*) ;; *) fail "the backup after the VM is $kind" ;; esac
"$VHDTOOL" backup restore -O raw "$repo" latest "$dir/out.raw" >/dev/null || fail "restore"
"$VHDTOOL" read "$img" 0 $((32 << 20)) | cmp - "$dir/out.raw" ||
	fail "the incremental backup missed writes the tracking did not see"
echo ok
