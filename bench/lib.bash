# Sourced by bench/*.sh: helpers every benchmark uses.

# median: the middle value (the lower middle of an even count) of the
# numbers on stdin, one a line; "-" when there are none.
median() { sort -g | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : "-" }'; }

# interleave REPS GROUP...: REPS rounds; each round runs v_NAME for every
# NAME of every GROUP (a group: names separated by spaces), each group
# starting with a different one each round (who runs first after another
# group's work may pay for reclaiming its memory).
interleave() {
	local reps=$1 r g n k vs
	shift
	for r in $(seq 1 "$reps"); do
		echo "round $r of $reps"
		for g in "$@"; do
			read -r -a vs <<< "$g"
			n=${#vs[@]}
			for k in $(seq 0 $((n - 1))); do
				"v_${vs[$(( (k + r) % n ))]}"
			done
		done
	done
}

# bench_disk: $work/disk.raw of $SIZE_MIB MiB (first half random, second
# half zeros) and a 10% change of it: new data for every 10th aligned 4 MiB
# chunk ($work/new.bin) and the bytes it replaces ($work/orig.bin, to undo
# it).  Sets disk, nchunks, changed.  bench_apply FILE writes those pieces
# into the disk through vhdtool ($T), so change tracking records them.
bench_disk() {
	local half=$((SIZE_MIB / 2)) k
	disk=$work/disk.raw
	head -c $((half << 20)) /dev/urandom >"$disk"
	head -c $(((SIZE_MIB - half) << 20)) /dev/zero >>"$disk"
	nchunks=$((SIZE_MIB / 4))
	changed=$((nchunks / 10))
	for k in $(seq 0 $((changed - 1))); do
		dd if="$disk" bs=4M skip=$((k * 10)) count=1 status=none >>"$work/orig.bin"
	done
	head -c $((changed << 22)) /dev/urandom >"$work/new.bin"
}
bench_apply() {
	local k
	for k in $(seq 0 $((changed - 1))); do
		dd if="$1" bs=4M skip="$k" count=1 status=none |
			"$T" write "$disk" $((k * 40))M $((4 << 20)) || exit 1
	done
}
