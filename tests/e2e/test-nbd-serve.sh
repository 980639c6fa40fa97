#!/bin/bash
# vhdtool serve's life: TCP with a chosen port, --once, SIGTERM while a
# client is connected with an acknowledged, unflushed write (the server
# exits 0 and the write is in the image, metadata included), the socket
# removed at exit, and usage errors.
set -eu
. "$(dirname "$0")/../interop/nbd-common.bash"
requires nbdinfo
hold=${BUILD:-build}/tests/helpers/nbd-write-hold
[ -x "$hold" ] || fail "$hold is not built"

"$V" create -t dynamic "$dir/disk.vhd" 32M >/dev/null

# TCP on a port the kernel picks, printed by serve.
"$V" serve --bind 127.0.0.1 --port 0 --read-only "$dir/disk.vhd" >"$dir/tcp.out" 2>&1 &
srv_pid=$!
for _ in $(seq 200); do grep -q '^serving' "$dir/tcp.out" && break; sleep 0.05; done
url=$(sed -n 's/^serving .* at \(nbd:\/\/[^ ]*\)$/\1/p' "$dir/tcp.out")
[ -n "$url" ] || fail "no URL printed: $(cat "$dir/tcp.out")"
nbdinfo --size "$url" | grep -qx 33554432 || fail "nbdinfo over TCP"
stop

# --once: exits by itself when the client has gone.
serve --once --read-only "$dir/disk.vhd"
nbdinfo --size "$uri" >/dev/null
for _ in $(seq 200); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$srv_pid" 2>/dev/null && fail "--once server still running"
wait "$srv_pid" || fail "--once server exited with $?"
srv_pid=
[ ! -e "$sock" ] || fail "socket left behind"

# SIGTERM with a connected client whose write was acknowledged, not flushed.
serve "$dir/disk.vhd"
"$hold" "$uri" $((5 << 20)) $((1 << 20)) 0x6b >"$dir/hold.out" &
bg_pids+=($!)
for _ in $(seq 200); do grep -q written "$dir/hold.out" && break; sleep 0.05; done
grep -q written "$dir/hold.out" || fail "the writer did not write"
stop TERM
[ ! -e "$sock" ] || fail "socket left behind"
head -c 1M /dev/zero | tr '\0' 'k' >"$dir/want.bin"
"$V" read "$dir/disk.vhd" 5M 1M | cmp - "$dir/want.bin" || fail "acknowledged write lost at stop"
"$V" check "$dir/disk.vhd" >/dev/null || fail "image not clean after stop"

# Usage errors: exit 2; a missing image: exit 1, one line.
rc=0; "$V" serve --socket "$sock" --port 1 "$dir/disk.vhd" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "--socket with --port: exit $rc"
rc=0; "$V" serve --port 70000 "$dir/disk.vhd" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "bad port: exit $rc"
rc=0; "$V" serve --socket "$sock" "$dir/nope.vhd" 2>"$dir/err" || rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <"$dir/err")" = 1 ] || fail "missing image: exit $rc, $(cat "$dir/err")"
echo "TCP, --once, stop with a connected writer, usage errors: fine"
