#!/bin/bash
# Hostile initiators against vhdtool serve --iscsi (tests/interop/
# iscsi-hostile.py): malformed PDUs, oversized segments, wrong CmdSN and
# DataSN (a wrong DataSN ends its command with CHECK CONDITION, the
# connection goes on), half and trickled logins, connections that vanish
# mid-Data-Out.
# The server must stay up, a normal session must work after each, and its
# thread and descriptor counts must return to where they were.
set -eu
. "$(dirname "$0")/iscsi-common.bash"
requires python3 iscsi-inq

"$V" create -t dynamic "$dir/disk.vhd" 32M >/dev/null
serve_iscsi --login-timeout 2000 "$dir/disk.vhd"
iscsi-inq "$url/0" >/dev/null || fail "iscsi-inq before"
sleep 0.3
threads0=$(ls /proc/$srv_pid/task | wc -l)
fds0=$(ls /proc/$srv_pid/fd | wc -l)
timeout 120 python3 "$(dirname "$0")/iscsi-hostile.py" "$port" "$IQN" ||
	{ cat "$dir/serve.err" | tail -20; fail "hostile cases"; }
kill -0 "$srv_pid" || fail "the server died"
iscsi-inq "$url/0" >/dev/null || fail "iscsi-inq after the hostile cases"
# Connections end asynchronously: give them a moment (bounded).
for _ in $(seq 100); do
	threads=$(ls /proc/$srv_pid/task | wc -l)
	fds=$(ls /proc/$srv_pid/fd | wc -l)
	[ "$threads" -le "$threads0" ] && [ "$fds" -le "$fds0" ] && break
	sleep 0.1
done
[ "$threads" -le "$threads0" ] || fail "threads: $threads0 before, $threads after"
[ "$fds" -le "$fds0" ] || fail "descriptors: $fds0 before, $fds after"
stop
