#!/bin/bash
# vhdtool check exits as qemu-img check does: 0 clean, 1 the check could
# not complete (missing file, usage error), 2 corruption, 3 leaked space
# only, 63 a format check does not support (a raw file, -f raw).  It used
# to exit 1 for every problem and 2 when it could not run.  Where qemu-img
# can judge the same file (raw, missing) both must agree.
set -u
T=${VHDTOOL:?}
PATCH=${BUILD:-build}/tests/helpers/vhdpatch
. "$(dirname "$0")/../lib.bash"
[ -x "$PATCH" ] || skip "missing $PATCH: run make first"
rc_of() { "$@" >"$dir/out" 2>"$dir/err"; echo $?; }
want() {   # RC CMD...
	local w=$1 rc
	shift
	rc=$(rc_of "$@")
	[ "$rc" = "$w" ] || fail "'$*' exited $rc, want $w: $(cat "$dir/out" "$dir/err")"
}

"$T" create "$dir/a.vhd" 8M >/dev/null || fail create
printf 'data' | "$T" write "$dir/a.vhd" 0 || fail write
want 0 "$T" check "$dir/a.vhd"

# 1: could not complete.
want 1 "$T" check "$dir/missing.vhd"
want 1 "$T" check --no-such-option "$dir/a.vhd"
want 1 "$T" check
want 1 "$T" check -f vpc /dev/null
if command -v qemu-img >/dev/null; then
	want 1 qemu-img check "$dir/missing.vhd"
fi

# 63: not a format check supports.
head -c 1M /dev/urandom > "$dir/r.raw"
want 63 "$T" check "$dir/r.raw"
want 63 "$T" check -f raw "$dir/a.vhd"
if command -v qemu-img >/dev/null; then
	want 63 qemu-img check "$dir/r.raw"
	want 63 qemu-img check -f raw "$dir/a.vhd"
fi

# 3: only leaked space.  Block 0's BAT entry cleared: its 2 MiB stay in
# the file, used by nothing.
cp "$dir/a.vhd" "$dir/leak.vhd"
"$PATCH" "$dir/leak.vhd" bat.0=0xffffffff || fail patch
want 3 "$T" check "$dir/leak.vhd"
grep -q "leaked: " "$dir/out" || fail "leak not named: $(cat "$dir/out")"
want 3 "$T" check --repair "$dir/leak.vhd"
"$T" compact "$dir/leak.vhd" >/dev/null || fail "compact"
want 0 "$T" check "$dir/leak.vhd"

# 2: corruption (a damaged footer copy), and corruption with leaks.
cp "$dir/a.vhd" "$dir/bad.vhd"
"$PATCH" "$dir/bad.vhd" foot-copy.checksum=1 || fail patch
want 2 "$T" check "$dir/bad.vhd"
"$PATCH" "$dir/bad.vhd" bat.0=0xffffffff || fail patch
want 2 "$T" check "$dir/bad.vhd"
grep -q "leaked: " "$dir/out" || fail "leak beside corruption not named"
# Repaired: the corruption goes, the leak stays.
want 3 "$T" check --repair "$dir/bad.vhd"
grep -q "repaired: " "$dir/out" || fail "repair not reported"
echo "check exit codes match qemu-img's"
