#!/bin/bash
# Backup round trips on raw, fixed, dynamic and differencing (chain)
# sources: a full backup, three writes through vhdtool into chunks 1, 5
# and 11, then an incremental that must read exactly those 3 chunks (the
# change-tracking file counts them), then one with no change that reads
# none.  Every backup is restored as raw and compared byte for byte with
# the source as it was; the incremental also as fixed and dynamic VHD
# (qemu-img compare, vhdtool check); dynamic output must be sparse.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires qemu-img python3
M=$((1 << 20))
SIZE=$((48 * M))

# jget ID KEY...: fields of the backup's manifest, one a line.
jget() {
	$T backup show --json "$dir/repo" "$1" |
		python3 -c 'import json,sys; j=json.load(sys.stdin); [print("null" if j[k] is None else j[k]) for k in sys.argv[1:]]' "${@:2}"
}

head -c $((8 * M)) /dev/urandom >"$dir/a.bin"
head -c $((4 * M)) /dev/urandom >"$dir/b.bin"

# Fill a disk (through vhdtool: the same writes for every kind).
fill() {
	$T write "$1" 0 <"$dir/a.bin" || fail "fill $1"
	$T write "$1" 20M <"$dir/b.bin" || fail "fill $1"
}

$T backup init "$dir/repo" || fail "init"

check_kind() {   # NAME SRC
	local name=$1 src=$2 id1 id2 id3 out

	id1=$($T backup create "$dir/repo" "$src" 2>"$dir/err") || fail "$name: create: $(cat "$dir/err")"
	[ "$(jget "$id1" kind)" = full ] || fail "$name: first backup is not full"
	$T read "$src" 0 $SIZE >"$dir/ref1" || fail "$name: read ref1"

	# Chunks 1, 5 (twice) and 11 change.
	printf 'one' | $T write "$src" $((4 * M + 17)) || fail "$name: write 1"
	head -c 100000 /dev/urandom | $T write "$src" $((20 * M + 5)) || fail "$name: write 2"
	printf 'again' | $T write "$src" $((24 * M - 5)) || fail "$name: write 3"
	printf 'last' | $T write "$src" $((SIZE - 4)) || fail "$name: write 4"
	$T read "$src" 0 $SIZE >"$dir/ref2" || fail "$name: read ref2"

	id2=$($T backup create -p "$dir/repo" "$src" 2>"$dir/err") || fail "$name: create 2: $(cat "$dir/err")"
	grep -q '^backup: 100%' "$dir/err" || fail "$name: -p showed no progress: $(cat "$dir/err")"
	[ "$(jget "$id2" kind parent chunks-read consistency | tr '\n' ' ')" = "incremental $id1 3 offline " ] ||
		fail "$name: second backup: $(jget "$id2" kind parent chunks-read consistency reason | tr '\n' ' ')"

	id3=$($T backup create "$dir/repo" "$src" 2>/dev/null) || fail "$name: create 3"
	[ "$(jget "$id3" kind chunks-read bytes-stored | tr '\n' ' ')" = "incremental 0 0 " ] ||
		fail "$name: unchanged disk: $(jget "$id3" kind chunks-read bytes-stored reason | tr '\n' ' ')"

	# Every backup as raw; the incremental also as fixed and dynamic VHD.
	for pair in "$id1 ref1 raw" "$id2 ref2 raw" "$id2 ref2 fixed" "$id2 ref2 dynamic" "$id3 ref2 dynamic"; do
		set -- $pair
		out="$dir/out-$name.$3"
		$T backup restore -O "$3" "$dir/repo" "$1" "$out" || fail "$name: restore $3 $1"
		if [ "$3" = raw ]; then
			cmp "$out" "$dir/$2" || fail "$name: raw restore of $1 differs"
		else
			qemu-img compare -q -f raw -F vpc "$dir/$2" "$out" || fail "$name: $3 restore of $1 differs"
			$T check "$out" >/dev/null || fail "$name: restored $3 VHD does not check clean"
		fi
		if [ "$3" = dynamic ]; then
			# Sparse: the 48 MiB disk has data in at most 8 of 24 blocks.
			alloc=$($T info --json "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated-blocks"])')
			[ "$alloc" -le 8 ] || fail "$name: dynamic restore allocated $alloc blocks"
		fi
		rm -f "$out"
	done
	echo "$name: full $id1, incremental $id2 (3 chunks read), $id3 (0 read): restores identical"
}

# raw
truncate -s $SIZE "$dir/disk.raw"
fill "$dir/disk.raw"
check_kind raw "$dir/disk.raw"
# fixed
$T create -t fixed "$dir/fixed.vhd" $SIZE >/dev/null || fail "create fixed"
fill "$dir/fixed.vhd"
check_kind fixed "$dir/fixed.vhd"
# dynamic
$T create -t dynamic "$dir/dyn.vhd" $SIZE >/dev/null || fail "create dynamic"
fill "$dir/dyn.vhd"
check_kind dynamic "$dir/dyn.vhd"
# chain: data in the base and in the child
$T create "$dir/base.vhd" $SIZE >/dev/null || fail "create base"
$T write "$dir/base.vhd" 0 <"$dir/a.bin" || fail "fill base"
$T snapshot "$dir/base.vhd" "$dir/child.vhd" || fail "snapshot"
$T write "$dir/child.vhd" 20M <"$dir/b.bin" || fail "fill child"
check_kind chain "$dir/child.vhd"

# Deduplication across sources: the raw, fixed and dynamic disks hold the
# same bytes, so their chunks were stored once.
n=$(find "$dir/repo/chunks" -type f -name '[0-9a-f]*' | wc -l)
[ "$n" -le 20 ] || fail "$n chunk files for 4 disks sharing most chunks"
$T backup verify "$dir/repo" >"$dir/verify" || fail "verify: $(cat "$dir/verify")"
grep -q '^ok: 12 backups (0 damaged)' "$dir/verify" || fail "verify summary: $(cat "$dir/verify")"
# Nothing but the images, their .ctk files and the repository remain.
left=$(ls -A "$dir" | grep -c '^\.')
[ "$left" = 0 ] || fail "temporary files left: $(ls -A "$dir")"
echo "ok: $n chunk files"
