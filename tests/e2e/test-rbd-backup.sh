#!/bin/bash
# Backups of a Ceph RBD image with its own snapshots as change source, on a
# real single-node cluster (tests/ceph-cluster.bash): a full backup takes
# the snapshot vhdstack-bkp-ID and reads it; after three 4 MiB objects are
# written (two by vhdtool, one by qemu-io's rbd driver) the incremental
# reads exactly those three chunks (fast-diff, whole objects); every backup
# restores to the image's bytes and verifies; exactly one backup snapshot
# stays; a write after the snapshot is not in the backup; the previous
# snapshot removed -> full, saying so; the object map flagged invalid
# (object-map re-enabled) -> full, saying so; rebuilt -> incremental again.
set -eu
. "$(dirname "$0")/../interop/nbd-common.bash"
. "$(dirname "$0")/../ceph-cluster.bash"
requires qemu-img qemu-io python3

qemu-img --help | grep -qw rbd || skip "qemu-img has no rbd driver (qemu-block-extra)"

ceph_cluster_start "$dir/ceph"
conf=":conf=$CEPH_CONF"
img="rbd:rbd/disk$conf"
repo=$dir/repo
T() { timeout -k 5 120 "$@"; }
M=$((1 << 20))

. "$(dirname "$0")/bkp-common.bash"
backup() {   # -> prints the ID
	T "$V" backup create "$repo" "$img" 2>"$dir/err" || fail "backup create: $(cat "$dir/err")"
}
restores() {   # ID FILE: the backup restores to FILE's bytes
	T "$V" backup restore -O raw "$repo" "$1" "$dir/out.raw" >/dev/null || fail "restore $1"
	cmp "$dir/out.raw" "$2" || fail "restore of $1 differs from the image it was taken of"
	rm -f "$dir/out.raw"
}
snaps() {   # the image's backup snapshots, one per line
	T rbd snap ls rbd/disk | awk '$2 ~ /^vhdstack-bkp-/ { print $2 }'
}
one_snap() {   # ID: exactly the snapshot of backup ID stays
	local s

	s=$(snaps)
	[ "$s" = "vhdstack-bkp-$1" ] || fail "backup snapshots after $1: '$s'"
	[ "$(jget "$1" snapshot)" = "vhdstack-bkp-$1" ] || fail "manifest of $1 does not name its snapshot"
}
image() {   # the image's bytes now -> FILE
	T "$V" convert -O raw "$img" "$1" || fail "convert rbd -> raw"
}

T qemu-img create -f raw "$img" 64M >/dev/null || fail "qemu-img create"
T rbd info rbd/disk | grep -q fast-diff || skip "the cluster makes images without fast-diff"
head -c 24M /dev/urandom >"$dir/a.bin"
T "$V" write "$img" 0 <"$dir/a.bin" >/dev/null || fail "write 24M"
T "$V" backup init "$repo" >/dev/null || fail "backup init"

# Full: 6 of 16 chunks hold data.
id1=$(backup)
expect "$id1" full 6 "no earlier backup"
one_snap "$id1"
image "$dir/img1.raw"
restores "$id1" "$dir/img1.raw"

# Three objects change: 4M+100K (vhdtool), 30M (vhdtool, was a hole),
# 52M (qemu-io through its rbd driver).
head -c 64K /dev/urandom | T "$V" write "$img" $((4 * M + 100 * 1024)) >/dev/null || fail "write 1"
head -c 4K /dev/urandom | T "$V" write "$img" $((30 * M)) >/dev/null || fail "write 2"
T qemu-io -f raw -c "write -P 0x77 $((52 * M)) 8k" "$img" >/dev/null || fail "qemu-io write"
id2=$(backup)
expect "$id2" incremental 3
[ "$(jget "$id2" parent)" = "$id1" ] || fail "incremental $id2 does not build on $id1"
one_snap "$id2"
image "$dir/img2.raw"
restores "$id2" "$dir/img2.raw"
restores "$id1" "$dir/img1.raw"   # the full one is untouched

# Nothing changed: nothing read.  A snapshot an interrupted backup left
# (vhdstack-bkp-* of no backup) goes with the next commit.
T rbd snap create rbd/disk@vhdstack-bkp-orphan >/dev/null 2>&1 || fail "rbd snap create"
id3=$(backup)
expect "$id3" incremental 0
one_snap "$id3"
restores "$id3" "$dir/img2.raw"

# The backup reads its snapshot, not the live image: the snapshot of id3
# holds img2's bytes while the live image moves on.
head -c 1M /dev/urandom | T "$V" write "$img" $((8 * M)) >/dev/null || fail "write 3"
T "$V" read "rbd:rbd/disk@vhdstack-bkp-$id3$conf" 0 64M | cmp - "$dir/img2.raw" ||
	fail "the backup snapshot does not hold the image as of the backup"

# The previous snapshot removed behind our back: full, saying so.
T rbd snap rm --no-progress "rbd/disk@vhdstack-bkp-$id3" >/dev/null 2>&1 || fail "rbd snap rm"
id4=$(backup)
expect "$id4" full 8 "is gone"
one_snap "$id4"
image "$dir/img4.raw"
restores "$id4" "$dir/img4.raw"

# The object map flagged invalid (object-map and fast-diff re-enabled):
# full, saying so.
head -c 4K /dev/urandom | T "$V" write "$img" $((60 * M)) >/dev/null || fail "write 4"
T rbd feature disable rbd/disk fast-diff object-map >/dev/null 2>&1 || fail "feature disable"
T rbd feature enable rbd/disk object-map fast-diff >/dev/null 2>&1 || fail "feature enable"
T rbd info rbd/disk | grep -q "object map invalid" || fail "the object map is not flagged invalid: $(rbd info rbd/disk)"
id5=$(backup)
expect "$id5" full 9 "flagged invalid"
one_snap "$id5"
image "$dir/img5.raw"
restores "$id5" "$dir/img5.raw"

# Rebuilt (the image and the snapshot of id5): incremental again.
T rbd object-map rebuild --no-progress rbd/disk >/dev/null 2>&1 || fail "object-map rebuild"
T rbd object-map rebuild --no-progress "rbd/disk@vhdstack-bkp-$id5" >/dev/null 2>&1 ||
	fail "object-map rebuild of the snapshot"
head -c 4K /dev/urandom | T "$V" write "$img" $((12 * M)) >/dev/null || fail "write 5"
id6=$(backup)
expect "$id6" incremental 1
one_snap "$id6"
image "$dir/img6.raw"
restores "$id6" "$dir/img6.raw"

# Every chunk verified by digest; --no-track reads the live image and
# leaves the snapshots alone.
T "$V" backup verify "$repo" >/dev/null || fail "backup verify"
id7=$(T "$V" backup create --no-track "$repo" "$img" 2>/dev/null) || fail "backup --no-track"
[ "$(jget "$id7" snapshot)" = null ] || fail "--no-track took a snapshot"
one_snap "$id6"

# A snapshot named as the source (rbd:POOL/IMG@SNAP) is read as it is: no
# backup snapshot taken, none removed.
T rbd snap create rbd/disk@keep >/dev/null 2>&1 || fail "rbd snap create keep"
head -c 4K /dev/urandom | T "$V" write "$img" $((16 * M)) >/dev/null || fail "write 6"
id8=$(T "$V" backup create "$repo" "rbd:rbd/disk@keep$conf" 2>"$dir/err") || fail "backup of @keep: $(cat "$dir/err")"
[ "$(jget "$id8" snapshot)" = null ] || fail "a backup of @SNAP took a snapshot"
one_snap "$id6"
T "$V" read "rbd:rbd/disk@keep$conf" 0 64M >"$dir/keep.raw" || fail "read @keep"
restores "$id8" "$dir/keep.raw"

# Two backups of the image at once (another repository): backup A takes
# its snapshot and blocks on its repository's chunks.lock (held here);
# backup B commits meanwhile and must leave A's snapshot alone (A claims
# it while it runs); A then completes and restores to the image as of its
# snapshot.  No claim object stays behind.
image "$dir/img9.raw"
T "$V" backup init "$dir/repo2" >/dev/null || fail "backup init repo2"
exec 9>>"$repo/chunks.lock"
flock -x 9 || fail "flock chunks.lock"
T "$V" backup create --full "$repo" "$img" >"$dir/a.id" 2>"$dir/a.err" &
apid=$!
for _ in $(seq 300); do
	[ "$(snaps | wc -l)" -ge 2 ] && break
	kill -0 "$apid" 2>/dev/null || break
	sleep 0.1
done
asnap=$(snaps | grep -vx "vhdstack-bkp-$id6" | head -1)
[ -n "$asnap" ] || fail "backup A took no snapshot: $(cat "$dir/a.err")"
head -c 4K /dev/urandom | T "$V" write "$img" $((20 * M)) >/dev/null || fail "write 7"
idb=$(T "$V" backup create "$dir/repo2" "$img" 2>"$dir/err") || fail "backup B: $(cat "$dir/err")"
snaps | grep -qx "$asnap" || fail "backup B removed $asnap, which the running backup A reads"
flock -u 9
exec 9>&-
wait "$apid" || fail "backup A failed after B committed: $(cat "$dir/a.err")"
ida=$(cat "$dir/a.id")
[ "$(jget "$ida" snapshot)" = "$asnap" ] || fail "backup A does not name $asnap"
restores "$ida" "$dir/img9.raw"
T rados -p rbd ls | grep -q vhdstack_bkp_claim && fail "claim objects stay: $(rados -p rbd ls | grep vhdstack_bkp_claim)"
echo "rbd backups: full, incremental by fast-diff, snapshot kept, gone and invalid -> full, concurrent backups keep each other's snapshots: fine"
