#!/bin/bash
# Live merge while the guest writes records: snapshot, more records land
# in the child, then the merge folds the child back while the guest keeps
# writing (its I/O held only for the final step); twice, then two
# snapshots merged back one after the other (the first merge into a
# differencing parent).  Each merge
# answers with its time and the time I/O was held, removes the child and
# its frozen tracking file (a stand-in here: the backup writes the real
# one), and leaves the LUN on the original file.  A merge that would
# change the data of another child of the parent is refused and the LUN
# keeps serving its chain; merging with no snapshot is refused.  After
# quit: the guest saw no I/O error and no mismatch, no record the guest
# saw flushed is lost, and the image checks clean.
# VMM_USER_MODE=1: the user-mode backend.
. "$(dirname "$0")/vmm-common.bash"
requires_kvm
requires python3

img=$dir/a.vhd
child=$dir/a-snap1.vhd
"$VHDTOOL" create "$img" 64M >/dev/null || fail "create"
start_vmm --mem 64M --timeout 60 --workload records,flush_ms=100,slots=16384,batch=32,qd=8 \
	--disk "$img,lun=0" --control "$dir/c.sock"
wait_console 15 'records: flushed 0:[0-9]+' || fail "no records"
ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}')
echo "$ans" | grep -q '"error":"LUN 0 has no snapshot child to merge"' || fail "merge without a snapshot: $ans"

# more_records: wait until the guest flushed 256 records more than now
more_records() {
	local f0 n
	f0=$(flushed 0)
	for n in $(seq 150); do
		[ "$(flushed 0)" -ge $((f0 + 256)) ] && return 0
		kill -0 "$pid" 2>/dev/null || fail "vmm-mini ended"
		sleep 0.1
	done
	fail "no records after $1 (flushed $(flushed 0))"
}

for round in 1 2; do
	ans=$(ctl "$dir/c.sock" '{"cmd":"snapshot","lun":0}')
	echo "$ans" | grep -q "\"ok\":true,\"lun\":0,\"parent\":\"$img\",\"child\":\"$child\"" ||
		fail "snapshot $round: $ans"
	more_records "snapshot $round"
	: >"$child.frozen.ctk"
	if [ "$round" = 2 ]; then
		# another child of the parent: the merge would change its data
		"$VHDTOOL" create -p "$img" "$dir/other.vhd" >/dev/null || fail "create other"
		ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}')
		echo "$ans" | grep -q "\"error\":\"refusing to merge: $dir/other.vhd depends on $img" ||
			fail "merge with another child: $ans"
		[ -f "$child" ] || fail "the refused merge removed the child"
		more_records "the refused merge"
		rm -f "$dir/other.vhd"
	fi
	ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}')
	echo "merge $round: $ans"
	echo "$ans" | grep -Eq "^\{\"ok\":true,\"lun\":0,\"into\":\"$img\",\"merged\":\"$child\",\"seconds\":[0-9.]+,\"held_us\":[0-9]+,\"bytes\":[1-9][0-9]*,\"passes\":[1-9][0-9]*\}$" ||
		fail "merge $round: $ans"
	[ -e "$child" ] && fail "the child is still there after merge $round"
	[ -e "$child.frozen.ctk" ] && fail "the frozen tracking file is still there after merge $round"
	ans=$(ctl "$dir/c.sock" '{"cmd":"disks"}')
	echo "$ans" | grep -q "\"path\":\"$img\",\"top\":\"$img\",\"snapshots\":0" ||
		fail "disks after merge $round: $ans"
	more_records "merge $round"
done
# two snapshots, then two merges: the top one into the first snapshot (a
# differencing parent), that one into the image
ans=$(ctl "$dir/c.sock" '{"cmd":"snapshot","lun":0}')
echo "$ans" | grep -q '"ok":true' || fail "snapshot 3: $ans"
more_records "snapshot 3"
ans=$(ctl "$dir/c.sock" '{"cmd":"snapshot","lun":0}')
echo "$ans" | grep -q "\"parent\":\"$child\",\"child\":\"$dir/a-snap2.vhd\"" || fail "snapshot 4: $ans"
more_records "snapshot 4"
ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}')
echo "merge 3: $ans"
echo "$ans" | grep -q "\"ok\":true,\"lun\":0,\"into\":\"$child\",\"merged\":\"$dir/a-snap2.vhd\"" ||
	fail "merge 3: $ans"
more_records "merge 3"
ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}')
echo "merge 4: $ans"
echo "$ans" | grep -q "\"ok\":true,\"lun\":0,\"into\":\"$img\",\"merged\":\"$child\"" ||
	fail "merge 4: $ans"
ls "$dir"/a-snap* 2>/dev/null && fail "snapshot files left after merges 3 and 4"
more_records "merge 4"
ctl "$dir/c.sock" '{"cmd":"quit"}' >/dev/null
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after quit"
grep -q "records: stopped: .* 0 mismatches, 0 I/O errors" "$dir/err" || fail "guest did not stop cleanly"
grep -q "failed (srb" "$dir/err" && fail "the guest saw an I/O error"
check_records "$img" 0
grep -h "records," "$dir/check" | sed 's/^/  /'
echo ok
