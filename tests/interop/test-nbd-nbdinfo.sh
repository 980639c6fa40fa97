#!/bin/bash
# nbdinfo against vhdtool serve: the export size and flags match
# `vhdtool info`, and `nbdinfo --map` matches `vhdtool map` for a
# differencing chain, a fixed VHD and a sparse raw file.
set -eu
. "$(dirname "$0")/nbd-common.bash"
requires nbdinfo

# A chain: dynamic base with data at 0 and 8M; child with data at 100K,
# 40M and zeros written over 9M.
"$V" create -t dynamic "$dir/base.vhd" 64M >/dev/null
head -c 4096 /dev/urandom | "$V" write "$dir/base.vhd" 0
head -c 1M /dev/urandom | "$V" write "$dir/base.vhd" 8M
"$V" snapshot "$dir/base.vhd" "$dir/child.vhd"
head -c 64K /dev/urandom | "$V" write "$dir/child.vhd" 100K
head -c 12K /dev/urandom | "$V" write "$dir/child.vhd" 40M
head -c 64K /dev/zero | "$V" write "$dir/child.vhd" 9M
# A fixed VHD and a raw file, both with holes.
"$V" create -t fixed "$dir/fixed.vhd" 16M >/dev/null
head -c 1M /dev/urandom | "$V" write "$dir/fixed.vhd" 3M
truncate -s 32M "$dir/raw.img"
head -c 1M /dev/urandom | dd of="$dir/raw.img" bs=1M seek=20 conv=notrunc status=none

for img in child.vhd fixed.vhd raw.img; do
	serve --read-only "$dir/$img"
	nbdinfo --json "$uri" >"$dir/info.json"
	size=$(sed -n 's/.*"export-size": \([0-9]*\).*/\1/p' "$dir/info.json")
	if [ "$img" = raw.img ]; then
		want=$(stat -c %s "$dir/raw.img")
	else
		want=$("$V" info --json "$dir/$img" | sed -n '1s/.*"virtual-size": \([0-9]*\),.*/\1/p')
	fi
	[ -n "$size" ] && [ "$size" = "$want" ] || fail "$img: nbdinfo size '$size', vhdtool '$want'"
	grep -q '"is_read_only": true' "$dir/info.json" || fail "$img: not read-only"
	grep -q '"can_multi_conn": true' "$dir/info.json" || fail "$img: no multi-conn"
	grep -q '"base:allocation"' "$dir/info.json" || fail "$img: no base:allocation"
	map_nbdinfo "$uri" >"$dir/nbd.map"
	map_vhdtool "$dir/$img" >"$dir/vhdtool.map"
	if ! cmp -s "$dir/nbd.map" "$dir/vhdtool.map"; then
		echo "FAIL: $img: maps differ (nbdinfo, vhdtool):"
		diff "$dir/nbd.map" "$dir/vhdtool.map"
		exit 1
	fi
	# Both must show data and holes: the comparison is not trivial.
	grep -q ' 0$' "$dir/nbd.map" && grep -q ' 3$' "$dir/nbd.map" ||
		fail "$img: map has no data/hole mix: $(cat "$dir/nbd.map")"
	echo "$img: size $size, $(wc -l <"$dir/nbd.map") extents agree"
	stop
done
