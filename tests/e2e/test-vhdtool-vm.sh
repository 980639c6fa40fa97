#!/bin/bash
# `vhdtool vm CTL COMMAND`: against `vmm-mini host` (no KVM needed): disks
# as a table and as the VMM's JSON, stats, hot add of a relative path
# (sent absolute: the VMM's folder is not ours) read-only at a given LUN,
# hot remove; the VMM's errors (a merge without a child, a LUN that is
# not there) on stderr with exit 1; usage errors exit 2; a socket
# nobody serves and a server that never answers (--timeout) fail with a
# clear message; quit stops the VMM.  Then against `vmm-mini run
# --user-mode` with the records workload: status, pause, resume, snapshot
# (disks shows where the writes go), merge, quit; the image checks clean.
. "$(dirname "$0")/vmm-common.bash"
[ -n "$PY3" ] || skip "python3 is not installed"
T=$VHDTOOL
a=$dir/a.vhd
"$T" create "$a" 32M >/dev/null || fail "create a"
"$T" create -t fixed "$dir/f.vhd" 16M >/dev/null || fail "create f"

"$VMM" host --listen "$dir/s.sock" --control "$dir/c.sock" --disk "$a,lun=0" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/c.sock" ] && break; sleep 0.05; done
[ -S "$dir/c.sock" ] || fail "vmm-mini host did not start"

out=$("$T" vm "$dir/c.sock" disks) || fail "disks: $out"
echo "$out" | sed -n 2p | grep -Eq "^0 +vhd-sparse +32.0 MiB no +no +0 +$a$" || fail "disks table: $out"
out=$("$T" vm --output=json "$dir/c.sock" disks) || fail "disks json"
[ "$out" = "{\"disks\":[{\"lun\":0,\"path\":\"$a\",\"top\":\"$a\",\"snapshots\":0,\"kind\":\"vhd-sparse\",\"size\":33554432,\"ro\":false,\"tracked\":false}]}" ] ||
	fail "disks json: $out"
"$T" vm "$dir/c.sock" stats | grep -q '^srbs: 0$' || fail "stats"
out=$(cd "$dir" && "$T" vm c.sock disk-add --lun 5 --ro f.vhd) || fail "disk-add: $out"
[ "$out" = "lun: 5" ] || fail "disk-add answer: $out"
"$T" vm "$dir/c.sock" disks | grep -Eq "^5 +vhd-fixed +16.0 MiB yes .* $dir/f.vhd$" || fail "added disk not listed"
"$T" vm "$dir/c.sock" disk-remove 5 | grep -qx ok || fail "disk-remove"

# the VMM's errors
"$T" vm "$dir/c.sock" merge 0 >"$dir/out" 2>&1; rc=$?
[ $rc = 1 ] && grep -q "c.sock: LUN 0 has no snapshot child to merge" "$dir/out" ||
	fail "merge without a child: rc $rc $(cat "$dir/out")"
"$T" vm --output=json "$dir/c.sock" disk-remove 9 >"$dir/out" 2>"$dir/out2"; rc=$?
[ $rc = 1 ] && grep -q '^{"error":' "$dir/out" && grep -q "no LUN 9" "$dir/out2" ||
	fail "disk-remove 9: rc $rc $(cat "$dir/out" "$dir/out2")"
# usage errors
for args in "frob" "merge" "merge x" "merge 64" "disks extra" "disk-add" "backup-snapshot --freeze-timeout 0"; do
	# shellcheck disable=SC2086
	"$T" vm "$dir/c.sock" $args >/dev/null 2>&1; rc=$?
	[ $rc = 2 ] || fail "'vm CTL $args' exited $rc, not 2"
done
"$T" vm --output=yaml "$dir/c.sock" disks >/dev/null 2>&1; [ $? = 2 ] || fail "--output=yaml"
"$T" vm "$dir/c.sock" quit | grep -qx ok || fail "quit"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
wait "$pid"; rc=$?; pid=
[ $rc = 0 ] || fail "vmm-mini host exited $rc after quit"

# nobody listening; a server that never answers
"$T" vm "$dir/c.sock" disks >"$dir/out" 2>&1 && fail "no VMM: succeeded"
grep -q "is the VMM running with --control" "$dir/out" || fail "no VMM: $(cat "$dir/out")"
"$PY3" - "$dir/mute.sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); c.recv(100); time.sleep(5)
PY
mute=$!
for _ in $(seq 100); do [ -S "$dir/mute.sock" ] && break; sleep 0.05; done
"$T" vm --timeout 1 "$dir/mute.sock" disks >"$dir/out" 2>&1 && fail "mute VMM: succeeded"
grep -q "no answer within 1 s" "$dir/out" || fail "mute VMM: $(cat "$dir/out")"
kill "$mute" 2>/dev/null; wait "$mute" 2>/dev/null

# ---- vmm-mini run --user-mode
VMM_USER_MODE=1
USER_MODE_ARG=(--user-mode)
start_vmm --mem 64M --timeout 40 --workload records,flush_ms=100 --disk "$a,lun=0" --control "$dir/c.sock"
wait_console 15 'records: flushed 0:[0-9]+' || fail "no records"
"$T" vm "$dir/c.sock" status | grep -qx "state: running" || fail "status"
"$T" vm "$dir/c.sock" pause | grep -qx "state: paused" || fail "pause"
"$T" vm "$dir/c.sock" status | grep -qx "state: paused" || fail "status paused"
"$T" vm "$dir/c.sock" resume | grep -qx "state: running" || fail "resume"
out=$("$T" vm "$dir/c.sock" snapshot 0) || fail "snapshot: $out"
echo "$out" | grep -qx "child: $dir/a-snap1.vhd" || fail "snapshot answer: $out"
"$T" vm "$dir/c.sock" disks | grep -q "(writes go to $dir/a-snap1.vhd)" || fail "disks after snapshot"
out=$("$T" vm "$dir/c.sock" merge 0) || fail "merge: $out"
echo "$out" | grep -qx "into: $a" || fail "merge answer: $out"
[ -f "$dir/a-snap1.vhd" ] && fail "the child is still there"
"$T" vm "$dir/c.sock" quit >/dev/null || fail "quit run"
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini run exited $rc after quit"
check_records "$a" 0
echo ok
