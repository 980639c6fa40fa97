#!/bin/bash
# vhdtool resize: fixed grow and shrink, dynamic grow inside the BAT's
# padding and beyond it (blocks moved out of the BAT's way), differencing
# grow (parent locators moved), shrink refused over data and done over
# zeros; sizes seen by qemu-img and vhdiinfo, content by qemu-img compare.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires qemu-img vhdiinfo
vsize() { qemu-img info --output=json -f vpc "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }
media() { vhdiinfo "$1" | sed -n 's/.*Media size.*(\([0-9]*\) bytes).*/\1/p'; }
# same IMAGE RAW SIZE: the image has SIZE bytes (qemu, libvhdi) equal to RAW
same() {
	[ "$(vsize "$1")" = "$3" ] || fail "$1: qemu-img size $(vsize "$1"), expected $3"
	[ "$(media "$1")" = "$3" ] || fail "$1: vhdiinfo size $(media "$1"), expected $3"
	truncate -s "$3" "$2"
	qemu-img compare -q -f vpc -F raw "$1" "$2" || fail "$1 content differs"
	"$T" check "$1" >/dev/null || fail "$1: check: $("$T" check "$1")"
}
cd "$dir"
head -c 3M /dev/urandom > r3

# Fixed.
"$T" create -t fixed f.vhd 16M >/dev/null && "$T" write f.vhd 1M < r3 || fail "fixed setup"
"$T" convert -O raw f.vhd f.raw || fail "export"
"$T" resize f.vhd +16M >/dev/null || fail "fixed grow"
same f.vhd f.raw $((32 << 20))
[ "$(stat -c %s f.vhd)" = $(((32 << 20) + 512)) ] || fail "fixed file size"
"$T" resize f.vhd 8M 2>err && fail "shrank without --allow-shrink"
grep -q 'allow-shrink' err || fail "message: $(cat err)"
"$T" resize --allow-shrink f.vhd 3M 2>err && fail "shrank over data"
grep -q 'holds data at offset' err || fail "message: $(cat err)"
"$T" resize --allow-shrink f.vhd 4M >/dev/null || fail "fixed shrink"
same f.vhd f.raw $((4 << 20))
[ "$(stat -c %s f.vhd)" = $(((4 << 20) + 512)) ] || fail "fixed file not cut"

# Dynamic, 512 KiB blocks: 64M has 128 entries (1 BAT sector, room up to
# the first block at 3584: 512 entries); 512M needs 1024: blocks must move.
"$T" create --block-size 512K d.vhd 64M >/dev/null || fail "create dynamic"
"$T" write d.vhd 0 < r3 && "$T" write d.vhd 61M < r3 || fail "write dynamic"
"$T" convert -O raw d.vhd d.raw || fail "export"
"$T" resize d.vhd 200M > out || fail "dynamic grow in place"
grep -q moved out && fail "moved blocks without need: $(cat out)"
same d.vhd d.raw $((200 << 20))
"$T" resize d.vhd 512M > out || fail "dynamic grow with moves"
grep -q 'blocks\? moved' out || fail "expected blocks to move: $(cat out)"
same d.vhd d.raw $((512 << 20))
head -c 1M /dev/urandom > piece
"$T" write d.vhd 500M < piece || fail "write in the new area"
dd if=piece of=d.raw bs=1M seek=500 conv=notrunc status=none
same d.vhd d.raw $((512 << 20))
"$T" resize d.vhd 100M 2>err && fail "shrank without --allow-shrink"
"$T" resize --allow-shrink d.vhd 100M 2>err && fail "shrank over data"
grep -q 'holds data' err || fail "message: $(cat err)"
head -c 1M /dev/zero | "$T" write d.vhd 500M || fail "zero the data"
"$T" resize --allow-shrink d.vhd 64M > out || fail "dynamic shrink"
grep -q 'dropped' out || fail "empty blocks not dropped: $(cat out)"
same d.vhd d.raw $((64 << 20))
"$T" resize --allow-shrink d.vhd -1M >/dev/null 2>&1 && fail "shrank over the data at 61M"
"$T" resize d.vhd 100000 2>err && fail "accepted a size not a multiple of 512"
"$T" resize d.vhd 12Q 2>err && fail "accepted a bad size"
grep -q 'not a number' err || fail "message: $(cat err)"

# Differencing: the BAT grows into the parent locators, which move.
"$T" create b.vhd 64M >/dev/null && "$T" write b.vhd 0 < r3 || fail "base"
"$T" snapshot b.vhd c.vhd && "$T" write c.vhd 5M < r3 || fail "child"
"$T" convert -O raw c.vhd c.raw || fail "export child"
"$T" resize c.vhd 300M > out || fail "differencing grow"
grep -q 'locators moved' out || fail "locators not moved: $(cat out)"
"$T" check c.vhd >/dev/null || fail "check child: $("$T" check c.vhd)"
[ "$(media c.vhd)" = $((300 << 20)) ] || fail "vhdiinfo child size"
vhdiinfo c.vhd | grep -q 'Parent filename.*b.vhd' || fail "vhdiinfo lost the parent name"
"$T" info c.vhd | grep -q "parent:.*b.vhd" || fail "parent not found after the move"
"$T" convert -O raw c.vhd c2.raw || fail "export grown child"
truncate -s 300M c.raw
qemu-img compare -q -f raw -F raw c.raw c2.raw || fail "grown child reads differently"
echo "resize agrees with qemu-img and libvhdi"
