#!/bin/bash
# One writer at a time: while `vhdtool serve` has an image open for
# writing, a second writer (vhdtool write, check --repair, another
# read-write serve) is refused with one clear line and the image is left
# as it was; readers still work; once the server is killed with SIGKILL the
# kernel drops the lock and writing works again.
set -u
T=${VHDTOOL:?}
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$T" create "$dir/a.vhd" 16M >/dev/null || fail create
printf 'before' | "$T" write "$dir/a.vhd" 0 || fail "first write"
"$T" serve --socket "$dir/s.sock" "$dir/a.vhd" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
[ -S "$dir/s.sock" ] || fail "server did not start"
sum=$(sha256sum < "$dir/a.vhd")

err=$(printf 'second' | "$T" write "$dir/a.vhd" 0 2>&1) && fail "second writer was let in"
[ "$(echo "$err" | wc -l)" = 1 ] || fail "more than one line: $err"
case $err in *"a.vhd: in use"*) ;; *) fail "unclear message: $err" ;; esac
"$T" check --repair "$dir/a.vhd" >/dev/null 2>"$dir/err"; rc=$?
[ "$rc" = 2 ] || fail "check --repair of an image in use exited $rc"
grep -q "in use" "$dir/err" || fail "repair refusal unclear: $(cat "$dir/err")"
"$T" serve --socket "$dir/t.sock" --once "$dir/a.vhd" 2>"$dir/err" && fail "second read-write server started"
grep -q "in use" "$dir/err" || fail "second server refusal unclear: $(cat "$dir/err")"
[ "$(sha256sum < "$dir/a.vhd")" = "$sum" ] || fail "refused writers changed the image"
[ "$("$T" read "$dir/a.vhd" 0 6)" = before ] || fail "reader refused or wrong"
"$T" check "$dir/a.vhd" >/dev/null || fail "read-only check refused"

kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
printf 'after!' | "$T" write "$dir/a.vhd" 0 || fail "write after the holder died"
[ "$("$T" read "$dir/a.vhd" 0 6)" = 'after!' ] || fail "write after the holder died did not land"
"$T" check "$dir/a.vhd" >/dev/null || fail "check at the end"
echo "second writers refused while the image was served; lock gone with the server"
