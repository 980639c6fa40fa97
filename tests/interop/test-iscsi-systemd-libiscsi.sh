#!/bin/bash
# vhdtool serve --iscsi under systemd socket activation (LISTEN_PID and
# LISTEN_FDS, as the NBD serve and nbdkit): the inherited TCP socket is
# served (iscsi-inq logs in through it), --bind/--port are refused with
# it; and --exit-with-parent: the target stops cleanly when the process
# that started it dies.  Both came with the listener the NBD server and
# the iSCSI target now share (common/listen.c); before, serve --iscsi
# had neither.  The activating "systemd" is a small python3 launcher.
set -u
. "$(dirname "$0")/iscsi-common.bash"
requires iscsi-inq python3

"$V" create -t fixed "$dir/a.vhd" 8M >/dev/null || fail create
# activate PORTFILE CMD...: listen on 127.0.0.1 (a free port, written to
# PORTFILE), start CMD with the socket as descriptor 3 and LISTEN_PID set
# to CMD's own pid (what systemd does).
cat >"$dir/activate.py" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(sys.argv[1], "w") as f:
    f.write(str(s.getsockname()[1]))
pid = os.fork()
if pid == 0:
    os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    os.execvp(sys.argv[2], sys.argv[2:])
s.close()
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
PY

python3 "$dir/activate.py" "$dir/port" "$V" serve --iscsi --target-name "$IQN" "$dir/a.vhd" \
	>"$dir/act.out" 2>"$dir/act.err" &
act_pid=$!
bg_pids+=("$act_pid")
for _ in $(seq 200); do grep -q '^serving' "$dir/act.out" 2>/dev/null && break; sleep 0.05; done
grep -q "as $IQN LUN 0 on 1 socket from systemd" "$dir/act.out" ||
	fail "not started by activation: $(cat "$dir/act.out" "$dir/act.err")"
port=$(cat "$dir/port")
iscsi-inq "iscsi://127.0.0.1:$port/$IQN/0" | grep -q 'Peripheral Device Type:DIRECT_ACCESS' ||
	fail "iscsi-inq through the activated socket"
srv=$(pgrep -P "$act_pid" || true)
[ -n "$srv" ] || fail "no server process"
kill -TERM "$srv"
wait "$act_pid" || fail "activated target exited with $?: $(cat "$dir/act.err")"

rc=0
python3 "$dir/activate.py" "$dir/port" "$V" serve --iscsi --port 3260 "$dir/a.vhd" >/dev/null 2>"$dir/err" || rc=$?
[ "$rc" -eq 2 ] || fail "activation + --port: exit $rc, want 2"
grep -q 'socket activation' "$dir/err" || fail "no message: $(cat "$dir/err")"

# --exit-with-parent: a parent shell starts the target and is killed; the
# target stops by itself with exit 0.
bash -c '"$1" serve --iscsi --port 0 --exit-with-parent "$2" >"$3" 2>&1 & echo $! >"$4"; wait' \
	_ "$V" "$dir/a.vhd" "$dir/ewp.out" "$dir/ewp.pid" &
parent=$!
for _ in $(seq 200); do grep -q '^serving' "$dir/ewp.out" 2>/dev/null && break; sleep 0.05; done
grep -q '^serving' "$dir/ewp.out" || fail "--exit-with-parent target did not start: $(cat "$dir/ewp.out")"
child=$(cat "$dir/ewp.pid")
kill -KILL "$parent"
wait "$parent" 2>/dev/null
for _ in $(seq 200); do kill -0 "$child" 2>/dev/null || break; sleep 0.05; done
kill -0 "$child" 2>/dev/null && { kill -KILL "$child"; fail "target outlived its parent"; }
"$V" check "$dir/a.vhd" >/dev/null || fail "image not clean after --exit-with-parent"
echo "serve --iscsi: socket activation and --exit-with-parent"
