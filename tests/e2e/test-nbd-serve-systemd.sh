#!/bin/bash
# vhdtool serve under systemd socket activation (LISTEN_PID/LISTEN_FDS, as
# nbdkit does): the inherited listening socket is served, explicit
# --socket/--port are refused with it, malformed variables are refused;
# and --exit-with-parent: the server stops cleanly (writes flushed) when
# the process that started it dies.  The activating "systemd" is a small
# python3 launcher (systemd itself is not needed on the machine).
set -eu
. "$(dirname "$0")/../interop/nbd-common.bash"
requires nbdinfo nbdcopy python3

"$V" create -t dynamic "$dir/disk.vhd" 16M >/dev/null
head -c 1M /dev/urandom >"$dir/pattern"
"$V" write "$dir/disk.vhd" 1M <"$dir/pattern" >/dev/null

# activate SOCKET CMD...: listen on a unix SOCKET, start CMD with it as
# descriptor 3 and LISTEN_PID set to CMD's own pid (what systemd does).
cat >"$dir/activate.py" <<'PY'
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
pid = os.fork()
if pid == 0:
    os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = os.environ.get("TEST_FDS", "1")
    os.execvp(sys.argv[2], sys.argv[2:])
s.close()
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
PY

python3 "$dir/activate.py" "$sock" "$V" serve "$dir/disk.vhd" >"$dir/act.out" 2>"$dir/act.err" &
act_pid=$!
bg_pids+=("$act_pid")
for _ in $(seq 200); do grep -q '^serving' "$dir/act.out" 2>/dev/null && break; sleep 0.05; done
grep -q 'on 1 socket from systemd' "$dir/act.out" || fail "not started by activation: $(cat "$dir/act.out" "$dir/act.err")"
nbdinfo --size "$uri" | grep -qx 16777216 || fail "nbdinfo through the activated socket"
nbdcopy "$uri" "$dir/out.raw"
cmp <(tail -c +1048577 "$dir/out.raw" | head -c 1M) "$dir/pattern" || fail "data read through the activated socket differ"
srv=$(pgrep -P "$act_pid" || true)
[ -n "$srv" ] || fail "no server process"
kill -TERM "$srv"
wait "$act_pid" || fail "activated server exited with $?"
[ -S "$sock" ] || fail "an activated server must not remove the socket it did not make"
rm -f "$sock"

# Explicit listening options together with activation are refused.
rc=0
python3 "$dir/activate.py" "$sock" "$V" serve --port 10809 "$dir/disk.vhd" >/dev/null 2>"$dir/err" || rc=$?
[ "$rc" -eq 2 ] || fail "activation + --port: exit $rc, want 2"
grep -q 'socket activation' "$dir/err" || fail "no message: $(cat "$dir/err")"
rm -f "$sock"
rc=0
TEST_FDS=x python3 "$dir/activate.py" "$sock" "$V" serve "$dir/disk.vhd" >/dev/null 2>"$dir/err" || rc=$?
[ "$rc" -eq 2 ] || fail "LISTEN_FDS=x: exit $rc, want 2"
grep -q "LISTEN_FDS='x'" "$dir/err" || fail "no message: $(cat "$dir/err")"
rm -f "$sock"
# LISTEN_PID of another process: not ours, so the usual default applies
# (here --socket), and the variables are left alone.
LISTEN_PID=1 LISTEN_FDS=1 "$V" serve --socket "$sock" --read-only "$dir/disk.vhd" >"$dir/o" 2>&1 &
srv_pid=$!
for _ in $(seq 200); do grep -q '^serving' "$dir/o" && break; sleep 0.05; done
grep -q "socket=$sock" "$dir/o" || fail "LISTEN_PID of another process was taken: $(cat "$dir/o")"
stop

# --exit-with-parent: a parent shell starts the server and is killed; the
# server stops by itself with exit 0 (its SIGTERM path flushes).
rm -f "$sock"
bash -c '"$1" serve --socket "$2" --exit-with-parent "$3" >"$4" 2>&1 & echo $! >"$5"; wait' \
	_ "$V" "$sock" "$dir/disk.vhd" "$dir/ewp.out" "$dir/ewp.pid" &
parent=$!
for _ in $(seq 200); do grep -q '^serving' "$dir/ewp.out" 2>/dev/null && break; sleep 0.05; done
child=$(cat "$dir/ewp.pid")
nbdinfo --size "$uri" >/dev/null || fail "--exit-with-parent server not serving"
kill -KILL "$parent"
wait "$parent" 2>/dev/null || true
for _ in $(seq 200); do kill -0 "$child" 2>/dev/null || break; sleep 0.05; done
kill -0 "$child" 2>/dev/null && { kill -KILL "$child"; fail "server outlived its parent"; }
[ ! -e "$sock" ] || fail "server did not clean up its socket after its parent died"
"$V" check "$dir/disk.vhd" >/dev/null || fail "image not clean after --exit-with-parent"
echo "ok"
