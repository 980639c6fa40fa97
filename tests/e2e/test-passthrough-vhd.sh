#!/bin/bash
# The same asynchronous verify on the disks VHD_O_DIRECT serves: a plain
# file opened with --direct (not a VHD: the pass-through back-end, O_DIRECT
# + libaio), a fixed VHD and a dynamic VHD (half allocated beforehand,
# the rest allocated by the run) opened with --direct.  Each run matches
# its model, including after closing and reopening; afterwards
# `vhdtool check` finds no problem and qemu-img reads each image as the
# model (`qemu-img compare -f vpc`, `cmp` for the plain file).
set -u
. "$(dirname "$0")/pt-common.bash"
requires qemu-img jq cmp dd
[ -x "$V" ] || skip "vhdtool not built"

size=$((64 << 20))
head -c "$size" /dev/urandom >"$dir/orig.raw"

# run NAME KIND IMAGE: verify IMAGE (its content is ref.raw), then check
# what is on disk.
run() {
	local name=$1 kind=$2 img=$3 info

	"$IO" --direct --info verify --qd 32 --ops 2000 --init "$dir/ref.raw" \
		--dump "$dir/model.raw" "$img" >"$dir/out" 2>&1 ||
		fail "verify on the $name: $(cat "$dir/out")"
	info=$(head -n 1 "$dir/out")
	[ "$(jget "$info" kind)" = "$kind" ] || fail "$name opened as: $info"
	[ "$(jget "$info" size)" = "$size" ] || fail "$name capacity: $info"
	[ "$(jget "$info" logical_block)" = 512 ] || fail "$name logical block: $info"
	# Direct I/O: the disk asks for aligned requests (the block layer
	# bounces the misaligned ones verify sends).
	[ "$(jget "$info" align_off)" -ge 512 ] || fail "$name not on the direct path: $info"
	case $img in
	*.vhd)	[ "$(jget "$info" serial)" = "$("$V" info --json "$img" | jq -r .uuid | tr -d -)" ] ||
			fail "$name serial is not its UUID: $info" ;;
	esac
	echo "$name: $(tail -n 1 "$dir/out")"
	cmp -s "$dir/ref.raw" "$dir/model.raw" && fail "verify wrote nothing to the $name"
}

# A plain file: not a VHD, so --direct opens it pass-through.
cp "$dir/orig.raw" "$dir/plain.raw"
cp "$dir/orig.raw" "$dir/ref.raw"
run "plain file" passthrough "$dir/plain.raw"
cmp "$dir/plain.raw" "$dir/model.raw" || fail "plain file differs from the model"

# A fixed VHD holding orig.raw.
"$V" create -t fixed "$dir/fixed.vhd" "$size" >/dev/null || fail "create fixed"
"$V" write "$dir/fixed.vhd" 0 <"$dir/orig.raw" || fail "fill fixed"
run "fixed VHD" vhd-fixed "$dir/fixed.vhd"
"$V" check "$dir/fixed.vhd" >"$dir/check" 2>&1 || fail "check of the fixed VHD: $(cat "$dir/check")"
qemu-img compare -q -f vpc -F raw "$dir/fixed.vhd" "$dir/model.raw" ||
	fail "qemu-img reads the fixed VHD differently from the model"

# A dynamic VHD with its first half allocated.
"$V" create -t dynamic "$dir/dyn.vhd" "$size" >/dev/null || fail "create dynamic"
head -c $((size / 2)) "$dir/orig.raw" | "$V" write "$dir/dyn.vhd" 0 || fail "fill dynamic"
head -c $((size / 2)) "$dir/orig.raw" >"$dir/ref.raw"
truncate -s "$size" "$dir/ref.raw"
run "dynamic VHD" vhd-sparse "$dir/dyn.vhd"
"$V" check "$dir/dyn.vhd" >"$dir/check" 2>&1 || fail "check of the dynamic VHD: $(cat "$dir/check")"
qemu-img compare -q -f vpc -F raw "$dir/dyn.vhd" "$dir/model.raw" ||
	fail "qemu-img reads the dynamic VHD differently from the model"
"$V" read "$dir/dyn.vhd" 0 "$size" | cmp - "$dir/model.raw" ||
	fail "vhdtool read of the dynamic VHD differs from the model"
echo "plain file, fixed and dynamic VHD with --direct: verify, check and qemu-img agree"
