#!/bin/bash
# Started with standard input, output or error closed, vhdtool must not
# open an image on descriptor 0, 1 or 2 and then read it as input or write
# its messages into it.  Each run below used to corrupt the image (or the
# output) and most exited 0; now descriptors 0-2 are opened on /dev/null
# first (reads of a closed stdin and writes to a closed stdout/stderr fail),
# and every image stays as it was.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
pid=
at_exit '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null'

"$T" create "$dir/a.vhd" 8M >/dev/null || fail create
printf 'payload!' | "$T" write "$dir/a.vhd" 0 || fail "first write"
sum=$(sha256sum < "$dir/a.vhd")
same() { [ "$(sha256sum < "$dir/a.vhd")" = "$sum" ] || fail "$1 changed the image"; }

# stdin closed: write must not read the image as its own input.
"$T" write "$dir/a.vhd" 512 <&- 2>/dev/null && fail "write with stdin closed exited 0"
same "write with stdin closed"

# stderr closed: the error message must not land in the image.
printf 'x' | "$T" write "$dir/a.vhd" 99999999999 2>&- && fail "bad write exited 0"
same "a refused write with stderr closed"

# stdout closed: check --repair prints its report while the image is open
# read-write; serve prints its address while serving.
"$T" check --repair "$dir/a.vhd" >&- 2>/dev/null
same "check --repair with stdout closed"
"$T" serve --socket "$dir/s.sock" "$dir/a.vhd" >&- 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
[ -S "$dir/s.sock" ] || fail "server did not start"
sleep 0.2
kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=
same "serve with stdout closed"
"$T" check "$dir/a.vhd" >/dev/null || fail "image damaged"

# stdout and stderr closed: convert's progress lines must not go into the
# output it is building.
head -c 3M /dev/urandom > "$dir/src.raw"
"$T" convert -p "$dir/src.raw" "$dir/dst.raw" >&- 2>&-
cmp -s "$dir/src.raw" "$dir/dst.raw" || fail "convert with stdout and stderr closed wrote a different output"
"$T" convert -p "$dir/src.raw" "$dir/dst.vhd" >&- 2>&-
"$T" check "$dir/dst.vhd" >/dev/null || fail "converted image damaged"
"$T" read "$dir/dst.vhd" 0 3M | cmp -s - "$dir/src.raw" || fail "converted image reads different"

# Output to a closed stdout fails loudly instead of vanishing.
"$T" read "$dir/a.vhd" 0 8 >&- 2>/dev/null && fail "read to a closed stdout exited 0"
"$T" info "$dir/a.vhd" >&- 2>/dev/null && fail "info to a closed stdout exited 0"
same "the last commands"
echo "closed standard descriptors never reach an image"
