#!/bin/bash
# A differencing image shrunk and grown again reads zeros in the regrown
# range, never its parent's old data there (as qemu zeroes the new area of
# an overlay over a larger backing file); the same for a child grown past a
# cut that is not 4 KiB aligned (the granule around the cut keeps its data)
# and past its parent's end.  Merging a shrunk child cuts the ancestor to
# the child's size, and a merge through a shrunk middle layer zeroes what
# the chain read as zeros: the merged disk reads exactly as the child did.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
cd "$dir"
M=1048576
cut=$((3 * M + 1536))   # a multiple of 512, not of 4096
# reads IMAGE EXPECTED-RAW: the disk reads exactly as the raw file, and is
# clean; qemu-img agrees (base images) when it is installed.
reads() {
	local size
	size=$("$T" info "$1" | sed -n 's/^virtual size:.*(\([0-9]*\) bytes).*/\1/p' | head -1)
	[ "$size" = "$(stat -c %s "$2")" ] || fail "$1: size $size, expected $(stat -c %s "$2")"
	"$T" read "$1" 0 "$(stat -c %s "$2")" | cmp - "$2" || fail "$1 reads differently from $2"
	"$T" check "$1" >/dev/null || fail "$1: $("$T" check "$1")"
	# qemu's vpc driver does not read through a VHD parent: only for bases.
	if command -v qemu-img >/dev/null && ! "$T" info "$1" | grep -q '^type: *differencing'; then
		qemu-img compare -q -f vpc -F raw "$1" "$2" || fail "$1: qemu-img reads differently"
	fi
}
head -c 8M /dev/urandom > base.raw
"$T" convert base.raw base.vhd || fail "base"
cp base.vhd base.orig

# Shrink and grow back: zeros past the cut, the parent's data before it.
"$T" snapshot base.vhd c.vhd || fail snapshot
head -c 64K /dev/urandom > piece
"$T" write c.vhd $M < piece || fail "child write"
"$T" resize --allow-shrink c.vhd $cut >/dev/null || fail "shrink"
"$T" resize c.vhd 8M >/dev/null || fail "grow"
{ head -c $cut base.raw; head -c $((8 * M - cut)) /dev/zero; } > want
dd if=piece of=want bs=64K seek=16 conv=notrunc status=none
reads c.vhd want
# Shrunk again to the same size (the zeros that hid the parent go), and
# grown past the parent's end.
"$T" resize --allow-shrink c.vhd $cut >/dev/null || fail "shrink again"
"$T" resize c.vhd 12M >/dev/null || fail "grow past the parent"
{ head -c $cut want; head -c $((12 * M - cut)) /dev/zero; } > want12
reads c.vhd want12
cmp -s base.vhd base.orig || fail "resizing the child changed the parent"

# A child made smaller than its parent elsewhere (qemu-img can make one):
# the resize of the child with data of its own in the last granule.
"$T" snapshot base.vhd d.vhd || fail snapshot
"$T" resize --allow-shrink d.vhd 5M >/dev/null || fail "shrink d"
printf 'OWN!' | "$T" write d.vhd $((5 * M - 4)) || fail "write d"
"$T" resize d.vhd 6M >/dev/null || fail "grow d"
{ head -c $((5 * M - 4)) base.raw; printf 'OWN!'; head -c $M /dev/zero; } > wantd
reads d.vhd wantd

# Merge of a shrunk child: the base takes the child's size and content.
rm -f c.vhd d.vhd
cp base.orig base.vhd
"$T" snapshot base.vhd m.vhd || fail snapshot
"$T" write m.vhd $M < piece || fail "write m"
"$T" resize --allow-shrink m.vhd $cut >/dev/null || fail "shrink m"
{ head -c $cut base.raw; } > wantm
dd if=piece of=wantm bs=64K seek=16 conv=notrunc status=none
reads m.vhd wantm
"$T" merge m.vhd >/dev/null || fail "merge of a shrunk child"
reads base.vhd wantm
# Grown again, the old tail does not come back.
"$T" resize base.vhd 8M >/dev/null || fail "grow merged base"
{ cat wantm; head -c $((8 * M - cut)) /dev/zero; } > wantm8
reads base.vhd wantm8

# Merge through a shrunk middle layer: the child reads zeros past the
# middle's end, and so must the base afterwards.
cp base.orig base.vhd
"$T" snapshot base.vhd mid.vhd || fail snapshot
"$T" resize --allow-shrink mid.vhd 3M >/dev/null || fail "shrink mid"
"$T" snapshot mid.vhd top.vhd || fail snapshot
"$T" resize top.vhd 8M >/dev/null || fail "grow top"
{ head -c $((3 * M)) base.raw; head -c $((5 * M)) /dev/zero; } > wantt
reads top.vhd wantt
"$T" merge --into base.vhd top.vhd >/dev/null || fail "merge through a shrunk layer"
reads base.vhd wantt
echo "regrown ranges read zeros; merges of shrunk layers read as the child did"
