#!/bin/bash
# vhdtool compact: zero blocks of dynamic images (ours and qemu's) and
# empty blocks of a differencing image are dropped, the file really
# shrinks, and the disk reads the same (qemu-img compare, vhdiinfo, our
# check); zero blocks of a differencing image that hide parent data stay.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires qemu-img qemu-io vhdiinfo python3
alloc() { "$T" info --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated-blocks"])'; }
fsize() { stat -c %s "$1"; }
cd "$dir"

# Ours: 512 KiB blocks; data, zeros written over data, zeros written into
# new blocks, data at the very end.
"$T" create --block-size 512K d.vhd 32M >/dev/null || fail "create"
head -c 4M /dev/urandom | "$T" write d.vhd 0 || fail "write"
head -c 2M /dev/zero | "$T" write d.vhd 512K || fail "zero over data"
head -c 3M /dev/zero | "$T" write d.vhd 10M || fail "zeros"
head -c 700K /dev/urandom | "$T" write d.vhd 20M || fail "write"
head -c 1M /dev/zero | "$T" write d.vhd 28M || fail "zeros"
printf 'tail' | "$T" write d.vhd 33554428 || fail "last bytes"
"$T" convert -O raw d.vhd before.raw || fail "export"
[ "$(alloc d.vhd)" = 19 ] || fail "setup: $(alloc d.vhd) blocks"
size0=$(fsize d.vhd)
"$T" compact d.vhd > out || fail "compact: $(cat out)"
grep -q '12 of 19 blocks dropped' out || fail "report: $(cat out)"
[ "$(alloc d.vhd)" = 7 ] || fail "$(alloc d.vhd) blocks left"
size1=$(fsize d.vhd)
[ "$size1" -lt $((size0 - 12 * 524288)) ] || fail "file did not shrink: $size0 -> $size1"
"$T" check d.vhd >/dev/null || fail "check after compact"
qemu-img compare -q -f vpc -F raw d.vhd before.raw || fail "content changed (qemu-img)"
vhdiinfo d.vhd | grep -q 'Media size.*33554432 bytes' || fail "vhdiinfo"
"$T" compact d.vhd > out || fail "second compact"
grep -q '0 of 7 blocks dropped, 0 moved' out || fail "second compact changed things: $(cat out)"
# The image still takes writes after compaction (appends after the cut).
head -c 1M /dev/urandom > piece
"$T" write d.vhd 15M < piece || fail "write after compact"
"$T" read d.vhd 15M 1M | cmp - piece || fail "reread after compact"
"$T" check d.vhd >/dev/null || fail "check after new write"

# qemu's layout (blocks not 4 KiB aligned, its own BAT placement).
qemu-img create -q -f vpc q.vhd 16M || fail "qemu-img create"
qemu-io -f vpc -c 'write -P 0x5a 0 3M' -c 'write -z 4M 2M' -c 'write -P 0 8M 2M' \
	-c 'write -P 0x33 14M 1M' q.vhd >/dev/null || fail "qemu-io"
"$T" convert -O raw q.vhd qbefore.raw || fail "export"
a0=$(alloc q.vhd)
"$T" compact q.vhd >/dev/null || fail "compact qemu image"
[ "$(alloc q.vhd)" -lt "$a0" ] || fail "nothing dropped from qemu image ($a0 blocks)"
qemu-img compare -q -f vpc -F raw q.vhd qbefore.raw || fail "qemu image content changed"
"$T" check q.vhd >/dev/null || fail "check qemu image"

# Differencing: a block whose bitmap is empty goes; zeros that hide the
# parent's data stay.
"$T" create --block-size 512K base.vhd 8M >/dev/null || fail "create base"
head -c 8M /dev/urandom | "$T" write base.vhd 0 || fail "fill base"
"$T" snapshot base.vhd child.vhd || fail "snapshot"
head -c 512K /dev/zero | "$T" write child.vhd 1M || fail "zeros over parent"
head -c 100K /dev/urandom | "$T" write child.vhd 3M || fail "write child"
head -c 4096 /dev/urandom | "$T" write child.vhd 6M || fail "write child"
# Empty the bitmap of the block at 3M (index 6): allocated, nothing present;
# the block after it in the file (6M) then moves into its place.
python3 - child.vhd 6 <<'PY' || fail "patch bitmap"
import struct, sys
path, idx = sys.argv[1], int(sys.argv[2])
f = open(path, 'r+b')
f.seek(512 + 16); bat_off = struct.unpack('>Q', f.read(8))[0]
f.seek(bat_off + 4 * idx); sec = struct.unpack('>I', f.read(4))[0]
assert sec != 0xffffffff
f.seek(sec * 512); f.write(b'\0' * 512)
PY
"$T" convert -O raw child.vhd cbefore.raw || fail "export child"
[ "$(alloc child.vhd)" = 3 ] || fail "child setup: $(alloc child.vhd)"
"$T" compact child.vhd > out || fail "compact child: $(cat out)"
grep -q '1 of 3 blocks dropped, 1 moved' out || fail "child report: $(cat out)"
"$T" convert -O raw child.vhd cafter.raw || fail "export child after"
cmp cbefore.raw cafter.raw || fail "child content changed"
"$T" check child.vhd >/dev/null || fail "check child"
vhdiinfo child.vhd | grep -q 'Differential' || fail "vhdiinfo child"

"$T" create -t fixed f.vhd 1M >/dev/null
"$T" compact f.vhd 2>err && fail "compacted a fixed image"
grep -q 'fixed image' err || fail "message: $(cat err)"
echo "compact drops what it should, keeps what it must, and the file shrinks"
