#!/bin/bash
# Change tracking on a filesystem whose timestamps have 1-second
# resolution (ext4 with 128-byte inodes, as ext3 and some NFS servers):
# a foreign tool (dd) that writes the image in the same second as
#  A. the previous backup, or
#  B. the end of a tracked vhdtool write,
# leaves mtime and ctime exactly as recorded.  The next backup must still
# see the change (read it) and restore the new bytes, not the old ones.
# Then tracking must work again: a tracked write a second later gives an
# incremental backup.
# gc, with the repository on that filesystem: a chunk a running backup
# touched after its start, in the same second, has an mtime before that
# start; gc --grace 0 must keep it (and remove it once it is garbage for
# real).
#
# Needs root, mkfs.ext4 and a loop device (a real coarse filesystem: such
# timestamps cannot be faked with touch, which cannot set ctime).
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
[ "$(id -u)" = 0 ] || skip "needs root to mount a loop filesystem"
requires mkfs.ext4 mount umount python3
mnt=$dir/mnt
mounted=
at_exit 'exec 7<&-'
at_exit '[ -n "$mounted" ] && { umount "$mnt" || umount -l "$mnt"; } 2>/dev/null'
M=$((1 << 20))

mkdir "$mnt"
truncate -s 128M "$dir/fs.img"
mkfs.ext4 -q -F -I 128 "$dir/fs.img" 2>/dev/null || fail mkfs.ext4
mount -o loop "$dir/fs.img" "$mnt" 2>"$dir/err" ||
	skip "cannot mount a loop filesystem: $(cat "$dir/err")"
mounted=1
touch "$mnt/probe"
[ "$(stat -c %y "$mnt/probe" | sed 's/.*\.\([0-9]*\).*/\1/')" = 000000000 ] ||
	skip "ext4 -I 128 has sub-second timestamps on this kernel"

repo=$dir/repo          # the repository lives elsewhere (fine timestamps)
$T backup init --chunk-size 1M "$repo" || fail init
img=$mnt/disk.raw

# Wait until the clock is just past a whole second, so that what follows
# (well under a second of work) happens within one second.
second_start() {
	python3 -c 'import time
f = time.time() % 1
time.sleep((1 - f) + 0.02 if f > 0.02 else 0)'
}
jget() {
	$T backup show --json "$repo" "$1" |
		python3 -c 'import json,sys; j=json.load(sys.stdin); [print("null" if j[k] is None else j[k]) for k in sys.argv[1:]]' "${@:2}"
}
backup() {
	$T backup create "$repo" "$img" 2>"$dir/err" || fail "create: $(cat "$dir/err")"
}
restores() {   # ID STEP
	$T backup restore -O raw "$repo" "$1" "$dir/out.raw" || fail "$2: restore"
	cmp -s "$dir/out.raw" "$img" ||
		fail "$2: the backup restores old data ($(jget "$1" kind reason chunks-read | tr '\n' ' '))"
	rm -f "$dir/out.raw"
}
poke() {   # OFFSET-MiB: dd writes 4 KiB of new random bytes there
	head -c 4096 /dev/urandom |
		dd of="$img" bs=4096 seek=$(($1 * 256)) conv=notrunc status=none || fail dd
}

# ---- A: dd in the same second as the previous backup ----
second_start
head -c $((8 * M)) /dev/urandom >"$img"
t0=$(stat -c %Y "$img")
id1=$(backup)
poke 3
[ "$(stat -c %Y "$img")" = "$t0" ] && echo "A: dd wrote in the second of the backup's record"
id2=$(backup)
restores "$id2" "A (dd after the first backup)"
echo "A: $(jget "$id2" kind reason | tr '\n' ' ')"

# ---- B: dd in the same second as the end of a tracked write ----
sleep 1.1
id3=$(backup)
second_start
printf 'tracked' | $T write "$img" 1M || fail "vhdtool write"
poke 6
id4=$(backup)
restores "$id4" "B (dd after a tracked write)"
echo "B: $(jget "$id4" kind reason chunks-read | tr '\n' ' ')"

# ---- tracking still pays: a tracked write seconds apart is incremental
# (it reads the four 1 MiB chunks of one 4 MiB tracking granule) ----
sleep 1.1
id5=$(backup)
sleep 1.1
printf 'tracked again' | $T write "$img" 4M || fail "vhdtool write"
sleep 1.1
id6=$(backup)
{ read -r kind; read -r nread; } < <(jget "$id6" kind chunks-read)
[ "$kind" = incremental ] && [ "$nread" = 4 ] ||
	fail "after a tracked write: $kind reading $nread chunks, want incremental reading 4 ($(jget "$id6" reason))"
restores "$id6" "incremental"
$T backup verify "$repo" >/dev/null || fail verify
echo "tracking: incremental again"

# ---- gc beside a backup, repository on the coarse filesystem ----
requires flock
repo2=$mnt/repo
nchunks() { find "$repo2/chunks" -type f ! -name '.*' | wc -l; }
$T backup init --chunk-size 1M "$repo2" || fail "init on ext4"
head -c $((4 * M)) /dev/urandom >"$dir/g.raw"
gid=$($T backup create --no-track "$repo2" "$dir/g.raw" 2>/dev/null) || fail "create on ext4"
$T backup forget "$repo2" "$gid" || fail forget
sleep 2.1                      # its 4 chunks are old garbage now
second_start
sleep 0.3
# A backup registers (start time now, lock held), then deduplicates
# against the 4 chunks: it touches them, a moment later in the same second.
reg=$repo2/writers/20250101T000000Z-0000abcd
date +%s.%N >"$reg"
exec 7<"$reg"
flock -x 7 || fail "flock"
sleep 0.2
find "$repo2/chunks" -type f ! -name '.*' -exec touch {} +
$T backup gc --grace 0 "$repo2" >"$dir/out" || fail "gc: $(cat "$dir/out")"
[ "$(nchunks)" = 4 ] ||
	fail "gc removed chunks a running backup touched after its start: $(cat "$dir/out")"
exec 7<&-                      # that backup ended
sleep 2.1
$T backup gc --grace 0 "$repo2" >"$dir/out" || fail "gc: $(cat "$dir/out")"
[ "$(nchunks)" = 0 ] || fail "gc kept old garbage: $(cat "$dir/out")"
echo "gc: kept what a running backup touched, removed it later"
echo ok
