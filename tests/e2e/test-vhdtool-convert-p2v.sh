#!/bin/bash
# Physical to virtual and back: a loop device (attached here, detached on
# exit) holding a small "disk" is converted to a dynamic VHD and compared
# with the device (qemu-img compare); then the VHD is written back onto a
# second, dirty device (-O raw --force: zero ranges are zeroed, not
# skipped) and the devices compared.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires losetup qemu-img
loops=()
at_exit 'for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done'
# attach FILE: sets $dev (not a subshell, so the at_exit command sees every device)
attach() {
	dev=$(losetup -f --show "$1" 2>/dev/null) || skip "cannot attach a loop device (not permitted here)"
	loops+=("$dev")
}

truncate -s 20M "$dir/disk.img"
head -c 2M /dev/urandom | dd of="$dir/disk.img" conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$dir/disk.img" bs=1M seek=9 conv=notrunc status=none
head -c 7000 /dev/urandom | dd of="$dir/disk.img" bs=512 seek=$((19 * 2048 + 3)) conv=notrunc status=none
attach "$dir/disk.img"
[ -b "$dev" ] || fail "$dev is not a block device"

"$T" convert -O dynamic "$dev" "$dir/p2v.vhd" || fail "convert $dev"
qemu-img compare -q -f vpc -F raw "$dir/p2v.vhd" "$dev" || fail "VHD differs from $dev"
"$T" check "$dir/p2v.vhd" >/dev/null || fail "check"
n=$("$T" info --json "$dir/p2v.vhd" | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated-blocks"])')
[ "$n" = 3 ] || fail "$n blocks allocated for 3 blocks of data"

# Virtual to physical: onto a device full of other bytes.
head -c 20M /dev/urandom > "$dir/dirty.img"
first=$dev
attach "$dir/dirty.img"
dev2=$dev dev=$first
"$T" convert -O raw "$dir/p2v.vhd" "$dev2" 2>"$dir/err" && fail "wrote a device without --force"
grep -q 'already exists' "$dir/err" || fail "message: $(cat "$dir/err")"
"$T" convert -O dynamic --force "$dir/p2v.vhd" "$dev2" 2>"$dir/err" && fail "wrote a VHD onto a device"
"$T" convert -O raw --force "$dir/p2v.vhd" "$dev2" || fail "convert onto $dev2"
cmp "$dev" "$dev2" || fail "device copy differs"
echo "physical to virtual and back agree"
