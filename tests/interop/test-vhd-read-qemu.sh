#!/bin/bash
# Images made and written by qemu (qemu-img create -f vpc, qemu-io) read
# byte-identical through vhdtool: `vhdtool read` of the whole disk equals
# `qemu-img convert -f vpc -O raw`, odd sub-ranges equal the same bytes of
# that raw file, the virtual size matches qemu-img info, and vhdtool check
# finds the images clean.
set -eu
. "$(dirname "$0")/../lib.bash"
requires qemu-img qemu-io cmp
: "${VHDTOOL:?VHDTOOL must point at the vhdtool binary}"
cd "$dir"

# Random data for qemu-io -s (a pattern file: every byte differs, so data
# landing in the wrong sector shows).
head -c 300000 /dev/urandom >rand.bin

size_of_qemu() { qemu-img info --output=json -f vpc "$1" |
	sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' | head -n1; }
size_of_ours() { "$VHDTOOL" info --json "$1" |
	sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' | head -n1; }

# Compare LEN bytes at OFF of vhdtool read with the qemu raw export.
check_range() {
	local img=$1 off=$2 len=$3
	"$VHDTOOL" read "$img" "$off" "$len" >part.bin
	cmp part.bin <(tail -c +"$((off + 1))" "$img.raw" | head -c "$len") ||
		fail "$img: bytes $off+$len differ from qemu's"
}

for sub in fixed dynamic; do
	for size in 7M 33M; do
		img=q-$sub-$size.vhd
		qemu-img create -q -f vpc -o subformat=$sub "$img" "$size"
		# Aligned, unaligned, across a 2 MiB block boundary, last sector,
		# random data, and zeros written over earlier data.
		qemu-io -f vpc \
			-c 'write -q -P 0x11 0 512' \
			-c 'write -q -P 0xab 1000 333' \
			-c 'write -q -P 0x5c 2097000 5000' \
			-c 'write -q -s rand.bin 4194305 300000' \
			-c 'write -q -P 0x77 6291456 65536' \
			-c 'write -q -z 6300000 1024' \
			-c 'write -q -P 0xee 6000001 7' \
			"$img" >/dev/null
		qsize=$(size_of_qemu "$img")
		osize=$(size_of_ours "$img")
		[ -n "$qsize" ] && [ "$qsize" = "$osize" ] ||
			fail "$img: virtual size: qemu $qsize, vhdtool $osize"
		qemu-img convert -f vpc -O raw "$img" "$img.raw"
		[ "$(stat -c %s "$img.raw")" = "$qsize" ] || fail "$img: raw size"
		"$VHDTOOL" read "$img" 0 "$qsize" >ours.raw
		cmp ours.raw "$img.raw" || fail "$img: vhdtool read differs from qemu-img convert"
		# The written bytes are really there (not two empty disks).
		[ "$(tail -c +1001 ours.raw | head -c 333 | tr -d '\253' | wc -c)" = 0 ] ||
			fail "$img: pattern 0xab not at 1000"
		cmp <(tail -c +4194306 ours.raw | head -c 300000) rand.bin ||
			fail "$img: random data not at 4194305"
		check_range "$img" 999 335
		check_range "$img" 2097151 2
		check_range "$img" 4194304 300002
		check_range "$img" 6299999 1026
		check_range "$img" $((qsize - 1)) 1
		out=$("$VHDTOOL" check "$img") || fail "$img: vhdtool check: $out"
		echo "ok: $img ($sub, $qsize bytes)"
	done
done
