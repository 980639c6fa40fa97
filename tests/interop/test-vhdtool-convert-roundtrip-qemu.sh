#!/bin/bash
# vhdtool convert round trips, checked against the real qemu-img and libvhdi:
# raw -> fixed -> dynamic -> raw byte for byte; a 3-level differencing
# chain flattened (expected bytes built independently with dd); sparse raw
# output; unallocated zero blocks; odd sizes; --fixed-align; --block-size;
# a qemu-made VHD as the source.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires qemu-img vhdiinfo
vsize() { qemu-img info --output=json -f vpc "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }
media() { vhdiinfo "$1" | sed -n 's/.*Media size.*(\([0-9]*\) bytes).*/\1/p'; }
alloc() { "$T" info --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated-blocks"])'; }
cd "$dir"

# A 24 MiB source: random data, written zeros, a hole, a partly used block.
truncate -s 24M src.raw
head -c 3M /dev/urandom | dd of=src.raw bs=1M seek=0 conv=notrunc status=none
dd if=/dev/zero of=src.raw bs=1M seek=3 count=4 conv=notrunc status=none
head -c 5000 /dev/urandom | dd of=src.raw bs=1 seek=$((13 * 1048576 + 777)) conv=notrunc status=none
head -c 1M /dev/urandom | dd of=src.raw bs=1M seek=23 conv=notrunc status=none

"$T" convert -O fixed src.raw a.vhd || fail "raw -> fixed"
qemu-img compare -q -f vpc -F raw a.vhd src.raw || fail "fixed differs (qemu-img)"
[ "$(media a.vhd)" = $((24 << 20)) ] || fail "vhdiinfo size of fixed: $(media a.vhd)"
"$T" convert -O dynamic a.vhd b.vhd || fail "fixed -> dynamic"
qemu-img compare -q -f vpc -F vpc a.vhd b.vhd || fail "dynamic differs (qemu-img)"
[ "$(media b.vhd)" = $((24 << 20)) ] || fail "vhdiinfo size of dynamic"
vhdiinfo b.vhd | grep -q 'Disk type.*Dynamic' || fail "vhdiinfo type"
# 2 MiB blocks 0, 1, 6 and 11 hold data; 2 and 3 only zeros (not allocated).
[ "$(alloc b.vhd)" = 4 ] || fail "dynamic allocated $(alloc b.vhd) blocks, expected 4"
"$T" check b.vhd >/dev/null || fail "check dynamic"
"$T" convert -O raw b.vhd out.raw || fail "dynamic -> raw"
cmp out.raw src.raw || fail "raw round trip differs"
used=$(du -k out.raw | cut -f1)
[ "$used" -lt 12000 ] || fail "raw output not sparse ($used KiB used)"
"$T" convert b.vhd guessed.raw && cmp guessed.raw src.raw || fail "format guessed from .raw"

# Existing destinations are replaced only with --force; never the source.
"$T" convert src.raw b.vhd 2>err && fail "overwrote without --force"
grep -q 'already exists' err || fail "message: $(cat err)"
"$T" convert --force b.vhd b.vhd 2>err && fail "converted onto itself"
grep -q 'source or part of its chain' err || fail "message: $(cat err)"
"$T" convert --force -O dynamic src.raw b.vhd || fail "--force"
ls -a | grep -q '\.tmp\.' && fail "temporary file left behind"

# Block size, progress, odd size, alignment.
"$T" convert -p --block-size 512K src.raw c.vhd 2>prog || fail "--block-size"
grep -q '100%' prog || fail "no progress shown: $(cat prog)"
"$T" info c.vhd | grep -q 'block size: *524288' || fail "block size not used"
qemu-img compare -q -f vpc -F raw c.vhd src.raw || fail "512K blocks differ"
head -c 1000000 src.raw > odd.raw
"$T" convert -O dynamic odd.raw odd.vhd || fail "odd size"
[ "$(vsize odd.vhd)" = 1000448 ] || fail "odd size rounded to $(vsize odd.vhd)"
truncate -s 1000448 odd.raw
qemu-img compare -q -f vpc -F raw odd.vhd odd.raw || fail "odd size content"
head -c 10987520 src.raw > ten.raw
"$T" convert -O fixed --fixed-align 1M ten.raw ten.vhd || fail "--fixed-align"
[ "$(vsize ten.vhd)" = $((11 << 20)) ] || fail "aligned size $(vsize ten.vhd)"
[ "$(stat -c %s ten.vhd)" = $(((11 << 20) + 512)) ] || fail "fixed file size"

# A qemu-made dynamic VHD (its own layout and CHS size) as the source.
qemu-img convert -f raw -O vpc -o subformat=dynamic src.raw q.vhd || fail "qemu-img convert"
"$T" convert -O raw q.vhd q.raw || fail "convert qemu's vhd"
qemu-img compare -q -f vpc -F raw q.vhd q.raw || fail "qemu vhd -> raw differs"

# A 3-level chain flattened.  Expected bytes: the same writes applied to a
# raw file with dd.
"$T" create --block-size 512K base.vhd 16M >/dev/null || fail "create base"
truncate -s 16M expect.raw
w() { # IMAGE OFFSET LENGTH: random bytes into the image and into expect.raw
	head -c "$3" /dev/urandom > piece
	"$T" write "$1" "$2" < piece || fail "write $1 $2"
	dd if=piece of=expect.raw oflag=seek_bytes seek="$2" conv=notrunc status=none
}
w base.vhd 0 3145728
w base.vhd 9437184 1048576
"$T" snapshot base.vhd mid.vhd || fail "snapshot mid"
w mid.vhd 1048576 65536
w mid.vhd 5000 3000
w mid.vhd 12582912 524288
"$T" snapshot mid.vhd top.vhd || fail "snapshot top"
w top.vhd 9437184 4096
w top.vhd 1048576 100
head -c 524288 /dev/zero > zeros
"$T" write top.vhd 0 < zeros || fail "zeros over the parent"
dd if=zeros of=expect.raw conv=notrunc status=none
"$T" convert -O raw top.vhd flat.raw || fail "flatten to raw"
cmp flat.raw expect.raw || fail "flattened chain differs"
"$T" convert -O dynamic top.vhd flat.vhd || fail "flatten to dynamic"
qemu-img compare -q -f vpc -F raw flat.vhd expect.raw || fail "flattened dynamic differs (qemu-img)"
[ "$(media flat.vhd)" = $((16 << 20)) ] || fail "vhdiinfo size of flattened"
"$T" check flat.vhd >/dev/null || fail "check flattened"
echo "round trips and flattening agree with qemu-img and libvhdi"
