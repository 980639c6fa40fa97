#!/bin/bash
# vhdtool write IMAGE OFFSET [LENGTH] reading standard input: when the
# input stops short (ends before LENGTH, runs past the end of the disk, or
# cannot be read) the command fails and says how many bytes reached the
# disk and where, and exactly those bytes are on the disk.  The messages
# used to say only how much was read ("ended after 3 of 10 bytes"), or
# nothing of what was written.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
M=$((1 << 20))
"$T" create "$dir/d.vhd" 8M >/dev/null || fail create

# Ends before LENGTH: the 3 bytes are written, the message says so.
printf 'abc' | "$T" write "$dir/d.vhd" 4096 10 2>"$dir/err"; rc=$?
[ $rc = 1 ] || fail "short input: exit $rc, want 1"
grep -q "ended after 3 of 10 bytes: 3 bytes written at offset 4096" "$dir/err" ||
	fail "short input: $(cat "$dir/err")"
[ "$("$T" read "$dir/d.vhd" 4096 4 | od -An -c | tr -d ' ')" = 'abc\0' ] ||
	fail "short input: the disk does not hold the 3 bytes and nothing more"

# Runs past the end: the first 4 MiB piece fits and is written, the next
# does not; 4 MiB written at offset 4 MiB.
head -c $((5 * M)) /dev/urandom > "$dir/in"
"$T" write "$dir/d.vhd" $((4 * M)) < "$dir/in" 2>"$dir/err"; rc=$?
[ $rc = 1 ] || fail "past the end: exit $rc, want 1"
grep -q "runs past the end of the disk (8388608 bytes): 4194304 bytes written at offset 4194304" "$dir/err" ||
	fail "past the end: $(cat "$dir/err")"
"$T" read "$dir/d.vhd" $((4 * M)) $((4 * M)) | cmp -s - <(head -c $((4 * M)) "$dir/in") ||
	fail "past the end: the first 4 MiB are not on the disk"

# Standard input that cannot be read (a directory): nothing written.
"$T" write "$dir/d.vhd" 0 < "$dir" 2>"$dir/err"; rc=$?
[ $rc = 1 ] || fail "unreadable input: exit $rc, want 1"
grep -q "standard input: Is a directory: 0 bytes written at offset 0" "$dir/err" ||
	fail "unreadable input: $(cat "$dir/err")"

# Whole input: silent, exit 0.
printf 'whole' | "$T" write "$dir/d.vhd" 100 5 2>"$dir/err" || fail "whole input: $(cat "$dir/err")"
[ -s "$dir/err" ] && fail "whole input printed: $(cat "$dir/err")"
[ "$("$T" read "$dir/d.vhd" 100 5)" = whole ] || fail "whole input not written"
echo "a short read on standard input says how much was written"
