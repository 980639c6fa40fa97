#!/bin/bash
# backup-snapshot with a guest that does not freeze: the built-in guest's
# VSS service off (the channel never opened), refusing FREEZE (HV_E_FAIL),
# or never answering FREEZE while it keeps writing.  For each:
#  - with "require_app": an error, consistency "none", nothing switched (no
#    child file, the LUN still on its image), and the guest is not left
#    frozen: it keeps writing after;
#  - without: a crash-consistent snapshot whose "why" names the reason,
#    the THAW sent anyway (answered by the guest that has the channel);
#    then merge, quit, every record checks clean;
#  - (hang) a backup whose client goes away mid-FREEZE: the VMM finishes
#    on its own, THAW included, and its snapshot merges back.
# VMM_USER_MODE=1: the user-mode backend (test-vmm-vss-crash-usermode.sh).
. "$(dirname "$0")/vmm-common.bash"
requires_kvm
requires python3

# wait_more LUN: until the guest flushed records on LUN past what it had.
wait_more() {
	local f0
	f0=$(flushed "$1")
	for _ in $(seq 100); do [ "$(flushed "$1")" -gt "$f0" ] && return 0; sleep 0.1; done
	return 1
}

for mode in off refuse hang; do
	img=$dir/$mode.vhd
	"$VHDTOOL" create "$img" 32M >/dev/null || fail "create"
	start_vmm --mem 64M --timeout 40 --workload "records,flush_ms=100,vss=$mode" \
		--disk "$img,lun=0" --control "$dir/c.sock"
	wait_console 15 'records: flushed 0:[0-9]+' || fail "$mode: no records"
	case $mode in
	off)	why='HOT_BACKUP: the guest has no VSS channel open'
		grep -q 'vss: off (the channel stays closed)' "$dir/err" || fail "off: channel opened" ;;
	refuse)	why='FREEZE: the guest refused (status 0x80004005)' ;;
	hang)	why='FREEZE: no answer from the guest in 1000 ms' ;;
	esac

	ans=$(ctl "$dir/c.sock" \
		'{"cmd":"backup-snapshot","require_app":true,"freeze_timeout":1000}' \
		'{"cmd":"disks"}')
	echo "$ans" | sed -n 1p |
		grep -qF "{\"error\":\"the guest did not freeze ($why)\",\"consistency\":\"none\"}" ||
		fail "$mode: require_app: $ans"
	echo "$ans" | sed -n 2p | grep -q "\"top\":\"$img\",\"snapshots\":0" ||
		fail "$mode: something stayed switched: $ans"
	[ -e "$dir/$mode-snap1.vhd" ] && fail "$mode: the child file was left behind"
	wait_more 0 || fail "$mode: the guest stopped writing after a failed require_app backup"
	grep -q 'records: vss: frozen' "$dir/err" && fail "$mode: the guest froze"

	ans=$(ctl "$dir/c.sock" '{"cmd":"backup-snapshot","freeze_timeout":1000}')
	echo "$ans" | grep -qF "{\"ok\":true,\"consistency\":\"crash\",\"why\":\"$why\"," ||
		fail "$mode: crash-consistent snapshot: $ans"
	echo "$ans" | grep -q "\"disks\":\[{\"lun\":0,\"frozen\":\"$img\",\"child\":\"$dir/$mode-snap1.vhd\",\"ctk\":\"$dir/$mode-snap1.vhd.frozen.ctk\"}\]}$" ||
		fail "$mode: disks: $ans"
	if [ "$mode" != off ]; then
		# the THAW went out after both FREEZEs, and the guest answered it
		[ "$(grep -c 'vss: THAW (was not frozen)' "$dir/err")" = 2 ] ||
			fail "$mode: the guest did not see two THAWs"
	fi
	wait_more 0 || fail "$mode: no records after the crash-consistent snapshot"
	ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}')
	echo "$ans" | grep -q "\"ok\":true,\"lun\":0,\"into\":\"$img\"" || fail "$mode: merge: $ans"
	if [ "$mode" = hang ]; then
		# the backup's client goes away while the VMM waits for the
		# FREEZE answer: the VMM finishes on its own (THAW sent, the
		# snapshot left in place), and the snapshot merges back
		"$PY3" -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"{\"cmd\":\"backup-snapshot\",\"freeze_timeout\":1000}\n"); time.sleep(0.2)' \
			"$dir/c.sock" || fail "hang: the vanishing client"
		for _ in $(seq 100); do
			[ "$(grep -c 'vss: THAW (was not frozen)' "$dir/err")" = 3 ] && break
			sleep 0.1
		done
		[ "$(grep -c 'vss: THAW (was not frozen)' "$dir/err")" = 3 ] ||
			fail "hang: no THAW after the client went away"
		ans=$(ctl "$dir/c.sock" '{"cmd":"disks"}' '{"cmd":"merge","lun":0}')
		echo "$ans" | sed -n 1p | grep -q "\"top\":\"$dir/hang-snap1.vhd\",\"snapshots\":1" ||
			fail "hang: the snapshot of the vanished client: $ans"
		echo "$ans" | sed -n 2p | grep -q "\"ok\":true,\"lun\":0,\"into\":\"$img\"" ||
			fail "hang: merge after the vanished client: $ans"
	fi
	wait_more 0 || fail "$mode: no records after the merge"
	ctl "$dir/c.sock" '{"cmd":"quit"}' >/dev/null
	stop_vmm 0
	[ "$rc" = 0 ] || fail "$mode: vmm-mini exited $rc after quit"
	grep -q "records: stopped: .* 0 mismatches, 0 I/O errors, 0 freezes" "$dir/err" ||
		fail "$mode: guest did not stop cleanly"
	check_records "$img" 0
	echo "  $mode: $(grep -o 'longest stall [0-9]* us' "$dir/err" | tail -n 1)"
	mv "$dir/err" "$dir/err.$mode"
done
echo ok
