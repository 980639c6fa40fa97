#!/bin/bash
# vhdtool serve --iscsi prints the target's statistics at exit, as the NBD
# serve does: with --output=json its address at start (one object, the
# LUNs as an array) and at exit one object {"statistics": {...}} on
# stdout; with -v a line on stderr.  The counts are those of what the
# initiators did: two iscsi-inq logins (one connection and one login each,
# at least one command), one connection that breaks the protocol.  Before,
# serve --iscsi printed nothing at exit and took no --output.
set -u
. "$(dirname "$0")/iscsi-common.bash"
requires iscsi-inq jq

"$V" create -t fixed "$dir/a.vhd" 8M >/dev/null || fail create
"$V" create "$dir/b.vhd" 4M >/dev/null || fail create

# start ARGS...: the server; sets $port from the first URI it prints
# (JSON or a line).
start() {
	"$V" serve --iscsi --port 0 --target-name "$IQN" "$@" >"$dir/out" 2>"$dir/err" &
	srv_pid=$!
	for _ in $(seq 400); do
		grep -q 'iscsi://' "$dir/out" 2>/dev/null && break
		kill -0 "$srv_pid" 2>/dev/null || fail "serve --iscsi did not start: $(cat "$dir/err")"
		sleep 0.05
	done
	port=$(grep -o 'iscsi://127.0.0.1:[0-9]*' "$dir/out" | head -1 | cut -d: -f3)
	[ -n "$port" ] || fail "no port in $(cat "$dir/out")"
}

start --output=json "$dir/a.vhd" "$dir/b.vhd"
jq -s '.[0]' "$dir/out" | jq -e --arg a "$dir/a.vhd" --arg iqn "$IQN" '
	.target == $iqn and (.luns | length) == 2 and .luns[0].serving == $a and
	.luns[0]["virtual-size"] == 8388608 and .luns[1]["virtual-size"] == 4194304 and
	.luns[1].lun == 1 and .["read-only"] == false' >/dev/null ||
	fail "start object: $(cat "$dir/out")"
for lun in 0 1; do
	iscsi-inq "iscsi://127.0.0.1:$port/$IQN/$lun" >/dev/null || fail "iscsi-inq LUN $lun"
done
# A connection that sends a PDU that is not a login: a protocol error.
if command -v python3 >/dev/null; then
	python3 - "$port" <<'PY' || fail "could not send the bad PDU"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(bytes([0x3f]) + bytes(47))   # opcode 0x3f: none an initiator sends
try:
    s.recv(4096)
except OSError:
    pass
s.close()
PY
	bad=1
else
	bad=0
fi
stop
[ "$(jq -s length "$dir/out")" = 2 ] || fail "not two documents on stdout: $(cat "$dir/out")"
jq -s '.[1]' "$dir/out" | jq -e --argjson bad "$bad" '.statistics |
	.connections == 2 + $bad and .logins == 2 and .commands >= 2 and
	.refused == 0 and .["protocol-errors"] == $bad' >/dev/null ||
	fail "statistics at exit: $(cat "$dir/out")"

# Human: the serving lines as before, the counts on stderr with -v only.
start -v "$dir/a.vhd"
iscsi-inq "iscsi://127.0.0.1:$port/$IQN/0" >/dev/null || fail "iscsi-inq (human)"
kill -TERM "$srv_pid"; wait "$srv_pid" || fail "serve -v exited $?: $(cat "$dir/err")"
srv_pid=
grep -q '^serving .*a.vhd (8.0 MiB, .*) at iscsi://127.0.0.1:' "$dir/out" || fail "human start line: $(cat "$dir/out")"
[ "$(wc -l <"$dir/out")" = 1 ] || fail "human stdout has more than the serving line: $(cat "$dir/out")"
grep -q 'serve: at exit: 1 connections, 0 refused, 0 protocol-errors, 1 logins, [1-9][0-9]* commands' "$dir/err" ||
	fail "no statistics line with -v: $(cat "$dir/err")"
echo "serve --iscsi prints its statistics at exit (JSON with --output=json, a line with -v)"
