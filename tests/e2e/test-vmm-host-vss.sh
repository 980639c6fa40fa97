#!/bin/bash
# backup-snapshot on `vmm-mini host` (main.c's control handler), whose
# guest is another process attached through the vmbus transport: the
# VSS side of tests/helpers/vss-client answers as Linux hv_utils + its
# daemon do (tests/unit/vssguest.c).  One guest after the other:
#  - normal: "application" for LUNs 2 and 0 (in that order, released
#    together); the guest saw HOT_BACKUP, FREEZE, THAW and BU_COMPLETE once
#    each and is not frozen; merge brings the LUNs back;
#  - hang (FREEZE never answered) with require_app: an error, nothing
#    switched, and the THAW sent after the timeout thawed the guest;
#  - closed (channel never opened): bad "luns" (twice, absent, read-only)
#    answered with errors and nothing switched; then "crash", why = no VSS
#    channel open, of LUNs 0 and 2 (LUN 1 is read-only).
# No KVM needed.  tsan-test: the control, bus and storvsp threads all take part.
set -u
B=${BUILD:-build}
VMM=$B/bin/vmm-mini
CL=$B/tests/helpers/vss-client
T=${VHDTOOL:-$B/vhdtool}
. "$(dirname "$0")/vmm-common.bash"
[ -x "$CL" ] || skip "$CL not built"
[ -n "$PY3" ] || skip "python3 is not installed"
hpid= cpid=
at_exit '[ -n "$cpid" ] && kill -9 "$cpid" 2>/dev/null'
at_exit '[ -n "$hpid" ] && kill -9 "$hpid" 2>/dev/null'

img=$dir/a.vhd
"$T" create "$img" 16M >/dev/null || fail "create"
img2=$dir/c.vhd
"$T" create "$img2" 16M >/dev/null || fail "create c"
"$T" create "$dir/ro.vhd" 16M >/dev/null || fail "create ro"
"$VMM" host --listen "$dir/s.sock" --disk "$img,lun=0" --disk "$dir/ro.vhd,lun=1,ro" \
	--disk "$img2,lun=2" --control "$dir/c.sock" 2>"$dir/err" &
hpid=$!
for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
[ -S "$dir/s.sock" ] || fail "vmm-mini host did not start"

# guest MODE: start the client; it serves until stop_guest closes its stdin
guest() {
	rm -f "$dir/stop" "$dir/out"
	mkfifo "$dir/stop" || fail mkfifo
	timeout 60 "$CL" "$dir/s.sock" "$1" 50 <"$dir/stop" >"$dir/out" 2>&1 &
	cpid=$!
	exec 4>"$dir/stop"
	for _ in $(seq 100); do grep -q ready "$dir/out" && break; sleep 0.05; done
	grep -q ready "$dir/out" || fail "$1: the guest did not attach: $(cat "$dir/out")"
}
# stop_guest: the client's counts line into $counts
stop_guest() {
	exec 4>&-
	wait "$cpid" || fail "vss-client: $(cat "$dir/out")"
	cpid=
	counts=$(tail -n 1 "$dir/out")
}

guest normal
ans=$(ctl "$dir/c.sock" '{"cmd":"backup-snapshot","luns":"2,0"}')
echo "$ans" | grep -q "^{\"ok\":true,\"consistency\":\"application\",\"why\":\"\",\"window_us\":[0-9]*,\"held_us\":[0-9]*,\"disks\":\[{\"lun\":2,\"frozen\":\"$img2\",\"child\":\"$dir/c-snap1.vhd\",\"ctk\":\"$dir/c-snap1.vhd.frozen.ctk\"},{\"lun\":0,\"frozen\":\"$img\",\"child\":\"$dir/a-snap1.vhd\",\"ctk\":\"$dir/a-snap1.vhd.frozen.ctk\"}\]}$" ||
	fail "normal: $ans"
ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}' '{"cmd":"merge","lun":2}')
echo "$ans" | sed -n 1p | grep -q "\"ok\":true,\"lun\":0,\"into\":\"$img\"" || fail "merge 0: $ans"
echo "$ans" | sed -n 2p | grep -q "\"ok\":true,\"lun\":2,\"into\":\"$img2\"" || fail "merge 2: $ans"
[ -e "$dir/a-snap1.vhd" ] || [ -e "$dir/c-snap1.vhd" ] && fail "a child is still there after the merge"
stop_guest
[ "$counts" = "freezes=1 thaws=1 hot_backups=1 bu_completes=1 frozen=0" ] ||
	fail "normal: the guest saw $counts"

guest hang
ans=$(ctl "$dir/c.sock" '{"cmd":"backup-snapshot","require_app":true,"freeze_timeout":500}' \
	'{"cmd":"disks"}')
echo "$ans" | sed -n 1p |
	grep -qF '{"error":"the guest did not freeze (FREEZE: no answer from the guest in 500 ms)","consistency":"none"}' ||
	fail "hang: $ans"
echo "$ans" | sed -n 2p | grep -q '"snapshots":0' || fail "hang: something stayed switched: $ans"
[ -e "$dir/a-snap1.vhd" ] && fail "hang: the child file was left behind"
stop_guest
[ "$counts" = "freezes=1 thaws=1 hot_backups=1 bu_completes=0 frozen=0" ] ||
	fail "hang: the guest saw $counts"

guest closed
# requests that cannot snapshot: answered with nothing switched
ans=$(ctl "$dir/c.sock" '{"cmd":"backup-snapshot","luns":"0,0"}' \
	'{"cmd":"backup-snapshot","luns":"0,7"}' '{"cmd":"backup-snapshot","luns":"0,1"}' \
	'{"cmd":"disks"}')
echo "$ans" | sed -n 1p | grep -qF '{"error":"\"luns\": LUN 0 named twice","consistency":"none"}' ||
	fail "luns 0,0: $ans"
echo "$ans" | sed -n 2p | grep -qF '{"error":"no LUN 7","consistency":"none"}' || fail "luns 0,7: $ans"
echo "$ans" | sed -n 3p | grep -q '^{"error":"LUN 1: .*","consistency":"none"}$' || fail "luns 0,1 (ro): $ans"
echo "$ans" | sed -n 4p | grep -q '"snapshots":0.*"snapshots":0.*"snapshots":0' ||
	fail "something stayed switched: $ans"
[ -e "$dir/a-snap1.vhd" ] && fail "a child file was left behind"
# "luns" absent: every writable VHD LUN (not the read-only LUN 1)
ans=$(ctl "$dir/c.sock" '{"cmd":"backup-snapshot"}')
echo "$ans" | grep -qF '{"ok":true,"consistency":"crash","why":"HOT_BACKUP: the guest has no VSS channel open",' ||
	fail "closed: $ans"
echo "$ans" | grep -q '"disks":\[{"lun":0,[^]]*},{"lun":2,[^]]*}\]}$' ||
	fail "closed: LUNs snapshotted: $ans"
ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}' '{"cmd":"merge","lun":2}' '{"cmd":"quit"}')
echo "$ans" | sed -n 1,2p | grep -c '"ok":true' | grep -q 2 || fail "closed: merge: $ans"
stop_guest
wait "$hpid"
rc=$?
hpid=
[ "$rc" = 0 ] || fail "vmm-mini host exited $rc"
"$T" check "$img" >/dev/null && "$T" check "$img2" >/dev/null || fail "vhdtool check"
echo ok
