#!/bin/bash
# info accepts block devices (and raw files) like the other commands: a
# loop device shows format raw, its kind and size, as the other commands
# read it.  It used to fail on anything that was not
# a VHD.  A VHD on a block device is a VHD for every command (below).
# The loop devices are always detached (at_exit).
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
loops=()
at_exit 'for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done'
requires losetup python3
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
attach() {   # FILE: prints the loop device
	local l
	l=$(losetup -f --show "$1" 2>/dev/null) || return 1
	echo "$l"
}

head -c 3M /dev/urandom > "$dir/raw.img"
loop=$(attach "$dir/raw.img") || skip "cannot attach a loop device (not root, or no loop support)"
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

# A VHD on a block device (an LV, a loop device) is a VHD, as qemu-img
# probes it: the footer at the device's end, as on a file.  info, check and
# map see it; read returns the disk, -f raw the device's bytes.  (They
# used to say raw.)  A dynamic VHD on a device cannot grow: writes are
# refused clearly; a fixed one is written in place.  check --repair is
# refused (a repair may move the image's end).
"$T" create "$dir/d.vhd" 8M >/dev/null || fail create
printf 'inside the disk' | "$T" write "$dir/d.vhd" 3000000 || fail "write d.vhd"
vloop=$(attach "$dir/d.vhd") || fail "second loop device"
loops+=("$vloop")
"$T" info --output=json "$vloop" > "$dir/vj" || fail "info of a VHD on a loop device"
[ "$(jget format < "$dir/vj")" = vhd ] || fail "VHD on a loop device: $(cat "$dir/vj")"
[ "$(jget virtual-size < "$dir/vj")" = 8388608 ] || fail "VHD size on a loop device: $(cat "$dir/vj")"
"$T" info "$vloop" | grep -q "type: *dynamic" || fail "info: not dynamic: $("$T" info "$vloop")"
"$T" check "$vloop" > "$dir/ck" 2>&1 || fail "check of the loop device: $(cat "$dir/ck")"
grep -q "no problems found" "$dir/ck" || fail "check: $(cat "$dir/ck")"
"$T" map --output=json "$vloop" > "$dir/map" || fail "map of the loop device"
"$T" map --output=json "$dir/d.vhd" > "$dir/map.file" || fail "map of the file"
cmp -s "$dir/map" "$dir/map.file" || fail "map differs from the file's: $(cat "$dir/map")"
[ "$("$T" read "$vloop" 3000000 15)" = "inside the disk" ] || fail "read of the VHD on the loop device"
[ "$("$T" read -f raw "$vloop" 0 8 | head -c 8)" = conectix ] || fail "read -f raw is not the bytes"
printf 'x' | "$T" write "$vloop" 0 2> "$dir/err" && fail "write to a dynamic VHD on a device accepted"
grep -q "block device can only be read" "$dir/err" || fail "refusal unclear: $(cat "$dir/err")"
"$T" check --repair "$vloop" > "$dir/err" 2>&1; rc=$?
[ "$rc" = 1 ] && grep -q "not repaired" "$dir/err" || fail "check --repair of a device: $rc $(cat "$dir/err")"
"$T" create -t fixed "$dir/f.vhd" 4M >/dev/null || fail "create fixed"
floop=$(attach "$dir/f.vhd") || fail "third loop device"
loops+=("$floop")
printf 'fixed!' | "$T" write "$floop" 4096 || fail "write to a fixed VHD on a device"
losetup -d "$floop" && loops=("$loop" "$vloop")
[ "$("$T" read "$dir/f.vhd" 4096 6)" = 'fixed!' ] || fail "the fixed VHD's write did not land"
"$T" check "$dir/f.vhd" >/dev/null || fail "the fixed VHD is damaged after the write"
echo "info, check and map see block devices: raw ones raw, VHDs on them as VHDs"
