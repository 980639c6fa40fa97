#!/bin/bash
# Images vhdtool creates (fixed and dynamic; sizes that are and are not a
# CHS product) and writes at odd offsets read in qemu exactly as the raw
# data they hold: `qemu-img compare -f vpc -F raw` passes against a raw
# file written with the same bytes, and `qemu-img info -f vpc` reports the
# exact size asked for.  Also images qemu created and wrote, then written
# by vhdtool (blocks it allocates after qemu's, sectors in qemu's blocks).
set -eu
. "$(dirname "$0")/../lib.bash"
requires qemu-img dd cmp
: "${VHDTOOL:?VHDTOOL must point at the vhdtool binary}"
cd "$dir"

head -c 200000 /dev/urandom >rand.bin

# put IMG RAW OFF LEN: LEN random bytes at OFF into both.
put() {
	local img=$1 raw=$2 off=$3 len=$4 src=$5
	head -c "$len" "$src" >chunk.bin
	"$VHDTOOL" write "$img" "$off" "$len" <chunk.bin || fail "vhdtool write $img $off $len"
	dd if=chunk.bin of="$raw" bs=1M oflag=seek_bytes seek="$off" conv=notrunc \
		status=none
}

M=1048576
# 10M+512; 302/4/17 and 1020/15/17 are exact CHS products.
sizes="$((100 * M)) $((10 * M + 512)) $((1024 * M)) $((127 * M)) 10514432 133171200"
for type in fixed dynamic; do
	for size in $sizes; do
		# A 1 GiB fixed image is a sparse file: cheap, but keep the
		# set small.
		img=o-$type-$size.vhd
		raw=o-$type-$size.raw
		"$VHDTOOL" create -t "$type" "$img" "$size"
		truncate -s "$size" "$raw"
		tail -c +7 rand.bin >rand2.bin
		put "$img" "$raw" 0 4096 rand.bin
		put "$img" "$raw" 1001 777 rand2.bin            # odd, inside
		put "$img" "$raw" $((2 * M - 100)) 300 rand.bin # across a block
		put "$img" "$raw" 5000001 70000 rand2.bin
		put "$img" "$raw" $((size - 513)) 513 rand.bin  # to the end
		put "$img" "$raw" $((size / 2 + 3)) 1 rand2.bin
		vsize=$(qemu-img info --output=json -f vpc "$img" |
			sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
		[ "$vsize" = "$size" ] ||
			fail "$img: qemu-img info virtual-size $vsize, expected $size"
		qemu-img compare -q -f vpc -F raw "$img" "$raw" ||
			fail "$img differs from $raw in qemu"
		# Geometry: the exact CHS when there is one, else the maximum
		# (which makes every qemu version use the footer's size).
		chs=$("$VHDTOOL" info --json "$img" | head -n1 |
			sed -n 's/.*"cylinders": \([0-9]*\), "heads": \([0-9]*\), "sectors": \([0-9]*\).*/\1 \2 \3/p')
		set -- $chs
		if [ $(($1 * $2 * $3 * 512)) != "$size" ]; then
			[ "$chs" = "65535 16 255" ] ||
				fail "$img: geometry $chs is neither exact nor the maximum"
		fi
		case $size in 10514432|133171200)
			[ "$chs" != "65535 16 255" ] || fail "$img: exact CHS size got the maximum geometry";;
		esac
		# The comparison can fail: one byte of the raw file inverted.
		v=$(tail -c +5000003 "$raw" | head -c 1 | od -An -tu1 | tr -d ' ')
		printf "\\$(printf %o $((255 - v)))" |
			dd of="$raw" bs=1 seek=5000002 conv=notrunc status=none
		qemu-img compare -q -f vpc -F raw "$img" "$raw" &&
			fail "$img: qemu-img compare did not see a changed byte"
		rm -f "$img" "$raw"
		echo "ok: $type $size"
	done
done

# qemu-made images, written by qemu and then by vhdtool.
for sub in fixed dynamic; do
	img=q-$sub.vhd
	qemu-img create -q -f vpc -o subformat=$sub "$img" 9M
	size=$(qemu-img info --output=json -f vpc "$img" |
		sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
	qemu-io -f vpc -c 'write -q -s rand.bin 2097152 100000' "$img" >/dev/null
	qemu-img convert -f vpc -O raw "$img" "$img.raw"
	put "$img" "$img.raw" 2097000 1000 rand2.bin    # into qemu's block 1
	put "$img" "$img.raw" 2150001 333 rand.bin      # inside qemu's data
	put "$img" "$img.raw" 5 4097 rand.bin           # a new block 0
	put "$img" "$img.raw" $((size - 700)) 700 rand2.bin
	qemu-img compare -q -f vpc -F raw "$img" "$img.raw" ||
		fail "$img: qemu reads what vhdtool wrote into its image differently"
	out=$("$VHDTOOL" check "$img") || fail "$img: vhdtool check: $out"
	echo "ok: qemu-made $sub written by vhdtool"
done
