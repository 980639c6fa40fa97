#!/bin/bash
# Pass-through LUNs over loop devices with 512- and 4096-byte logical
# blocks: bdev-io verify (random reads, writes, FUA, write-zeroes and
# flushes at QD32, misaligned offsets, lengths and buffers that the block
# layer bounces, multi-segment iovecs) matches its model at both sizes;
# --info reports the logical block size, the capacity and the alignment of
# the device; what was written through the pass-through is what the
# backing file holds afterwards (cmp), and what qemu-img and dd read from
# the device.  A read-only loop device opens read-only.
set -u
. "$(dirname "$0")/pt-common.bash"
requires losetup jq qemu-img dd cmp

size=$((64 << 20))
head -c "$size" /dev/urandom >"$dir/orig.raw"
for ss in 512 4096; do
	cp "$dir/orig.raw" "$dir/back.raw"
	loop_attach "$dir/back.raw" --sector-size "$ss"
	dev=$LOOP
	"$IO" --pt --info verify --qd 32 --ops 2000 --seed "$ss" \
		--init "$dir/orig.raw" --dump "$dir/model.raw" "$dev" >"$dir/out" 2>&1 ||
		fail "verify on a $ss-byte loop device: $(cat "$dir/out")"
	info=$(head -n 1 "$dir/out")
	[ "$(jget "$info" kind)" = passthrough ] || fail "kind: $info"
	[ "$(jget "$info" logical_block)" = "$ss" ] || fail "logical block is not $ss: $info"
	[ "$(jget "$info" size)" = "$size" ] || fail "capacity is not $size: $info"
	[ "$(jget "$info" physical_block)" -ge "$ss" ] || fail "physical block below $ss: $info"
	[ "$(jget "$info" align_off)" = "$ss" ] || fail "offset alignment is not $ss: $info"
	[ "$(jget "$info" read_only)" = false ] || fail "read-write device reported read-only: $info"
	[ -n "$(jget "$info" serial)" ] || fail "no serial: $info"
	grep -q '^verify: .* OK' "$dir/out" || fail "no verify summary: $(cat "$dir/out")"
	tail -n 1 "$dir/out"
	cmp "$dir/orig.raw" "$dir/model.raw" >/dev/null && fail "verify wrote nothing"

	# The device, read by others, holds the model.
	qemu-img compare -q -f raw -F raw "$dev" "$dir/model.raw" ||
		fail "qemu-img compare: the $ss-byte device differs from the model"
	dd if="$dev" bs=1M iflag=direct status=none | cmp - "$dir/model.raw" ||
		fail "dd iflag=direct of the $ss-byte device differs from the model"
	loop_detach "$dev"
	cmp "$dir/back.raw" "$dir/model.raw" ||
		fail "the backing file differs from what was written through the $ss-byte device"

	# Read-only: reported, and verify only reads.
	loop_attach "$dir/back.raw" --sector-size "$ss" --read-only
	dev=$LOOP
	info=$("$IO" --pt --ro info "$dev") || fail "info of a read-only device"
	[ "$(jget "$info" read_only)" = true ] || fail "read-only device reported writable: $info"
	"$IO" --pt --ro verify --ops 300 --init "$dir/model.raw" "$dev" >/dev/null ||
		fail "read-only verify on the $ss-byte device"
	loop_detach "$dev"
done
echo "loop devices with 512- and 4096-byte blocks: verify, limits and content agree"
