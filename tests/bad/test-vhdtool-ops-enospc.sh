#!/bin/bash
# Full disks: on a small tmpfs (mounted here, unmounted on exit; skipped
# when mounting is not permitted) convert, merge and resize fail with a
# clear "No space left" message and lose nothing: no partial DST, no
# temporary file left, the chain reads as before and the merge completes
# once there is room.  Compact needs no space and works on a full disk.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
mnt=$dir/small
mkdir "$mnt"
at_exit 'umount "$mnt" 2>/dev/null'
mount -t tmpfs -o size=12M tmpfs "$mnt" 2>/dev/null || skip "cannot mount a tmpfs here (not permitted)"
# expect1 PATTERN CMD...: CMD fails (exit 1) saying PATTERN
expect1() {
	local pat=$1
	shift
	"$@" >"$dir/out" 2>"$dir/err"
	local rc=$?
	[ "$rc" = 1 ] || fail "$* exited $rc ($(cat "$dir/err"))"
	grep -q -- "$pat" "$dir/err" || fail "$*: message '$(cat "$dir/err")' lacks '$pat'"
}
# fill: leave about $1 KiB free on the tmpfs
fill() {
	rm -f "$mnt/filler"
	dd if=/dev/zero of="$mnt/filler" bs=64K status=none 2>/dev/null
	truncate -s -"$1"K "$mnt/filler"
}
head -c 16M /dev/urandom > "$dir/big.raw"

# convert: every output format.
for fmt in raw fixed dynamic; do
	expect1 'No space left' "$T" convert -O "$fmt" "$dir/big.raw" "$mnt/out.$fmt"
	[ -e "$mnt/out.$fmt" ] && fail "partial $fmt output under its name"
	ls -A "$mnt" | grep -q tmp && fail "temporary file left after $fmt"
done
# ... and an existing DST stays as it was.
"$T" create "$mnt/keep.vhd" 1M >/dev/null && printf 'old' | "$T" write "$mnt/keep.vhd" 0 || fail "setup"
cp "$mnt/keep.vhd" "$dir/keep.orig"
expect1 'No space left' "$T" convert --force -O dynamic "$dir/big.raw" "$mnt/keep.vhd"
cmp "$mnt/keep.vhd" "$dir/keep.orig" || fail "existing DST changed by a failed convert"
rm -f "$mnt/keep.vhd"

# merge into a parent on a full disk, then again with room.
"$T" create --block-size 512K "$mnt/base.vhd" 16M >/dev/null || fail "create base"
head -c 1M /dev/urandom | "$T" write "$mnt/base.vhd" 0 || fail "write base"
"$T" snapshot "$mnt/base.vhd" "$mnt/child.vhd" || fail "snapshot"
head -c 4M /dev/urandom | "$T" write "$mnt/child.vhd" 6M || fail "write child"
"$T" convert -O raw "$mnt/child.vhd" "$dir/expect.raw" || fail "export"
fill 600
expect1 'No space left' "$T" merge "$mnt/child.vhd"
[ -e "$mnt/child.vhd" ] || fail "child removed after a failed merge"
"$T" check "$mnt/base.vhd" >/dev/null || fail "base damaged: $("$T" check "$mnt/base.vhd")"
"$T" check "$mnt/child.vhd" >/dev/null || fail "child damaged"
"$T" convert -O raw "$mnt/child.vhd" "$dir/now.raw" || fail "read child"
cmp "$dir/now.raw" "$dir/expect.raw" || fail "the chain reads differently after a failed merge"

# compact needs no room: zeros written into the base (a block allocated
# for them) are reclaimed on a full disk.
rm -f "$mnt/filler"
head -c 1M /dev/zero | "$T" write "$mnt/base.vhd" 12M || fail "zeros"
fill 64
"$T" compact "$mnt/base.vhd" >/dev/null || fail "compact on a full disk"
"$T" check "$mnt/base.vhd" >/dev/null || fail "check after compact"

# resize needs room for a fixed image.
rm -f "$mnt/filler"
"$T" create -t fixed "$mnt/f.vhd" 2M >/dev/null || fail "create fixed"
fill 64
cp "$mnt/f.vhd" "$dir/f.orig" || fail "copy"
expect1 'No space left' "$T" resize "$mnt/f.vhd" 64M
cmp "$mnt/f.vhd" "$dir/f.orig" || fail "failed resize changed the image"

# With room again the merge completes.
rm -f "$mnt/filler" "$mnt/f.vhd"
"$T" merge "$mnt/child.vhd" >/dev/null || fail "merge with room"
"$T" convert --force -O raw "$mnt/base.vhd" "$dir/now.raw" || fail "read base"
cmp "$dir/now.raw" "$dir/expect.raw" || fail "merged base differs"
echo "full disks: clear errors, nothing lost"
