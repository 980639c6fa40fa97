#!/bin/bash
# info accepts block devices (and raw files) like the other commands: a
# loop device shows format raw, its kind and size, as the other commands
# read it.  It used to fail on anything that was not
# a VHD.  The loop devices are always detached (trap).
set -u
T=${VHDTOOL:?}
dir=$(mktemp -d)
loops=()
cleanup() {
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v losetup >/dev/null || { echo "losetup not installed"; exit 77; }
command -v python3 >/dev/null || { echo "python3 not installed"; exit 77; }
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
attach() {   # FILE: prints the loop device
	local l
	l=$(losetup -f --show "$1" 2>/dev/null) || return 1
	echo "$l"
}

head -c 3M /dev/urandom > "$dir/raw.img"
loop=$(attach "$dir/raw.img") || { echo "cannot attach a loop device (not root, or no loop support)"; exit 77; }
loops+=("$loop")
"$T" info "$loop" > "$dir/out" 2>&1 || fail "info of a block device: $(cat "$dir/out")"
grep -q "format: *raw (block device)" "$dir/out" || fail "info: $(cat "$dir/out")"
grep -q "(3145728 bytes)" "$dir/out" || fail "info size: $(cat "$dir/out")"
"$T" info --output=json "$loop" > "$dir/j" || fail "info --output=json of a block device"
[ "$(jget format < "$dir/j")" = raw ] || fail "json format: $(cat "$dir/j")"
[ "$(jget kind < "$dir/j")" = "block device" ] || fail "json kind: $(cat "$dir/j")"
[ "$(jget virtual-size < "$dir/j")" = 3145728 ] || fail "json size: $(cat "$dir/j")"
[ "$(jget filename < "$dir/j")" = "$loop" ] || fail "json filename: $(cat "$dir/j")"
if command -v qemu-img >/dev/null; then
	[ "$(qemu-img info -f raw --output=json "$loop" | jget virtual-size)" = 3145728 ] ||
		fail "qemu-img sees another size"
fi
# A raw file, too.
"$T" info "$dir/raw.img" | grep -q "format: *raw (file)" || fail "info of a raw file"

# info says what the other commands read: a VHD's bytes on a block device
# are served raw by every command (VHDs are files), so info says raw too.
"$T" create "$dir/f.vhd" 2M >/dev/null || fail create
vloop=$(attach "$dir/f.vhd") || fail "second loop device"
loops+=("$vloop")
[ "$("$T" info --output=json "$vloop" | jget format)" = raw ] || fail "VHD bytes on a loop device"
[ "$("$T" read "$vloop" 0 8 | head -c 8)" = conectix ] || fail "read of the loop device is not raw"
echo "info accepts block devices"
