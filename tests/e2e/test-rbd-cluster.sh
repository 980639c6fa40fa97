#!/bin/bash
# Disks on Ceph RBD, against a real single-node cluster (tests/ceph-cluster.bash,
# started once for all of these): a VHD chain converted to rbd:POOL/IMG and
# back equals the chain; qemu-img's rbd driver reads what vhdtool wrote and
# vhdtool reads what qemu-img wrote; info and map on rbd: (map's data extents
# from rbd_diff_iterate2); write/read through vhdtool, write-zeroes over NBD; a snapshot
# (@SNAP) read-only; `vhdtool serve` of an rbd: disk read by nbdcopy; block
# status following writes in one long-lived open (served, written by qemu-io);
# a full backup of an rbd: disk restored; errors.
set -eu
. "$(dirname "$0")/../interop/nbd-common.bash"
. "$(dirname "$0")/../ceph-cluster.bash"
requires qemu-img qemu-io nbdcopy nbdinfo

qemu-img --help | grep -qw rbd || skip "qemu-img has no rbd driver (qemu-block-extra)"

ceph_cluster_start "$dir/ceph"
conf=":conf=$CEPH_CONF"
T() { timeout -k 5 60 "$@"; }

# A chain: a dynamic base with data at 0 and 40M, a child over it.
"$V" create -t dynamic "$dir/base.vhd" 64M >/dev/null
head -c 3M /dev/urandom >"$dir/a.bin"
head -c 1M /dev/urandom >"$dir/b.bin"
"$V" write "$dir/base.vhd" 0 <"$dir/a.bin" >/dev/null
"$V" write "$dir/base.vhd" 40M <"$dir/b.bin" >/dev/null
"$V" create --parent "$dir/base.vhd" "$dir/child.vhd" >/dev/null
head -c 512K /dev/urandom >"$dir/c.bin"
"$V" write "$dir/child.vhd" 1M <"$dir/c.bin" >/dev/null
# The chain's content, built independently of vhdtool (qemu's vpc driver
# does not follow differencing VHDs).
truncate -s 64M "$dir/want.raw"
dd if="$dir/a.bin" of="$dir/want.raw" conv=notrunc status=none
dd if="$dir/b.bin" of="$dir/want.raw" bs=1M seek=40 conv=notrunc status=none
dd if="$dir/c.bin" of="$dir/want.raw" bs=512K seek=2 conv=notrunc status=none

# VHD chain -> RBD -> VHD.
T "$V" convert "$dir/child.vhd" "rbd:rbd/img1$conf" || fail "convert to rbd"
T qemu-img compare -f raw "$dir/want.raw" -F raw "rbd:rbd/img1$conf" >/dev/null ||
	fail "qemu-img sees another disk in rbd than the chain"
rc=0; T "$V" convert "$dir/child.vhd" "rbd:rbd/img1$conf" 2>"$dir/err" || rc=$?
[ "$rc" = 1 ] && grep -q -- "--force" "$dir/err" || fail "existing image replaced without --force: $rc $(cat "$dir/err")"
T "$V" convert --force "$dir/child.vhd" "rbd:rbd/img1$conf" || fail "convert --force to rbd"
T "$V" convert -O dynamic "rbd:rbd/img1$conf" "$dir/back.vhd" || fail "convert from rbd"
qemu-img compare -f raw "$dir/want.raw" -F vpc "$dir/back.vhd" >/dev/null ||
	fail "VHD -> RBD -> VHD differs from the chain"

# info and map.
T "$V" info "rbd:rbd/img1$conf" >"$dir/info" || fail "info"
grep -q 67108864 "$dir/info" || grep -q "64 MiB" "$dir/info" || fail "info: no size: $(cat "$dir/info")"
T "$V" map --json "rbd:rbd/img1$conf" >"$dir/map.json" || fail "map"
# Data where the chain has data (0..3M, 40M..41M), nothing at 20M.
python3 - "$dir/map.json" <<'PY' || fail "map: $(cat "$dir/map.json")"
import json, sys
ext = json.load(open(sys.argv[1]))
if isinstance(ext, dict):
    ext = next(v for v in ext.values() if isinstance(v, list))
def data_at(off):
    for e in ext:
        if e["start"] <= off < e["start"] + e["length"]:
            return e["data"]
    raise SystemExit("no extent at %d" % off)
M = 1 << 20
assert data_at(0) and data_at(2 * M) and data_at(40 * M), "data not reported"
assert not data_at(20 * M) and not data_at(60 * M), "hole reported as data"
assert sum(e["length"] for e in ext) == 64 * M, "map does not cover the disk"
PY

# A full backup of an RBD image, restored to a raw file (no .ctk: --no-track).
T "$V" backup init "$dir/repo" >/dev/null || fail "backup init"
id=$(T "$V" backup create --no-track "$dir/repo" "rbd:rbd/img1$conf") || fail "backup create of an rbd: disk"
T "$V" backup restore -O raw "$dir/repo" "$id" "$dir/restored.raw" >/dev/null || fail "backup restore"
cmp "$dir/want.raw" "$dir/restored.raw" || fail "restored backup of the RBD image differs"

# qemu-img writes, vhdtool reads; vhdtool writes, qemu-img reads.
head -c 2M /dev/urandom >"$dir/q.bin"
T qemu-img create -f raw "rbd:rbd/img2$conf" 16M >/dev/null || fail "qemu-img create on rbd"
T qemu-img dd -f raw -O raw if="$dir/q.bin" of="rbd:rbd/img2$conf" bs=1M count=2 2>/dev/null ||
	T qemu-img convert -n -f raw -O raw "$dir/q.bin" "rbd:rbd/img2$conf" || fail "qemu-img write"
T "$V" read "rbd:rbd/img2$conf" 0 2M | cmp - "$dir/q.bin" || fail "vhdtool does not read what qemu-img wrote"
head -c 300K /dev/urandom >"$dir/w.bin"
T "$V" write "rbd:rbd/img2$conf" 5000000 <"$dir/w.bin" >/dev/null || fail "vhdtool write to rbd"
T qemu-img convert -f raw -O raw "rbd:rbd/img2$conf" "$dir/img2.raw" || fail "qemu-img read"
cmp -n $((300 * 1024)) -i 5000000:0 "$dir/img2.raw" "$dir/w.bin" || fail "qemu-img does not read what vhdtool wrote"
cmp -n $((2 << 20)) "$dir/img2.raw" "$dir/q.bin" || fail "vhdtool's write changed other bytes"

# A snapshot: read-only, and it keeps the old content.
T rbd snap create rbd/img2@s1 >/dev/null 2>&1 || fail "rbd snap create"
head -c 64K /dev/zero | T "$V" write "rbd:rbd/img2$conf" 0 >/dev/null || fail "write after snapshot"
T "$V" read "rbd:rbd/img2@s1$conf" 0 2M | cmp - "$dir/q.bin" || fail "snapshot content changed"
rc=0; head -c 512 /dev/zero | T "$V" write "rbd:rbd/img2@s1$conf" 0 >/dev/null 2>"$dir/err" || rc=$?
[ "$rc" != 0 ] || fail "a write to a snapshot succeeded"

# serve over NBD, read by nbdcopy.
serve --read-only "rbd:rbd/img1$conf"
nbdcopy "$uri" "$dir/nbd.raw" || fail "nbdcopy from serve"
stop
cmp "$dir/want.raw" "$dir/nbd.raw" || fail "served rbd disk differs"

# One long-lived open: block status follows writes (the cached window is
# dropped by a write), seen through serve's NBD base:allocation map.
T qemu-img create -f raw "rbd:rbd/img3$conf" 32M >/dev/null || fail "qemu-img create img3"
serve "rbd:rbd/img3$conf"
nbdinfo --map "$uri" >"$dir/map1"
awk '$3 != 3 { bad = 1 } END { exit bad }' "$dir/map1" || fail "empty image has data: $(cat "$dir/map1")"
T qemu-io -f raw -c "write -P 0x5a 12M 64k" "$uri" >/dev/null || fail "qemu-io write over NBD"
nbdinfo --map "$uri" >"$dir/map2"
awk '$1 <= 12582912 && 12582912 < $1 + $2 && $3 == 0 { ok = 1 } END { exit !ok }' "$dir/map2" ||
	fail "written range not reported as data after the write: $(cat "$dir/map2")"
awk '$1 <= 0 && 0 < $1 + $2 && $3 == 3 { ok = 1 } END { exit !ok }' "$dir/map2" ||
	fail "untouched range reported as data: $(cat "$dir/map2")"
T qemu-io -f raw -c "write -P 0x5a 20M 64k" -c "write -z 20M 64k" "$uri" >/dev/null ||
	fail "qemu-io write-zeroes over NBD"
stop
T "$V" read "rbd:rbd/img3$conf" 20M 64K | cmp - <(head -c 64K /dev/zero) || fail "write-zeroes left data"
T "$V" read "rbd:rbd/img3$conf" 12M 64K | cmp - <(head -c 64K /dev/zero | tr '\0' '\132') ||
	fail "the NBD write did not reach the image"

# Errors: one line, exit 1.
for bad in "rbd:rbd/nope$conf" "rbd:nopool/img1$conf" "rbd:rbd$conf" "rbd:rbd/img1:bogus=1"; do
	rc=0; T "$V" info "$bad" >/dev/null 2>"$dir/err" || rc=$?
	[ "$rc" = 1 ] && [ "$(wc -l <"$dir/err")" = 1 ] || fail "$bad: exit $rc, $(cat "$dir/err")"
done
echo "rbd: convert both ways, qemu-img interop, info, map, snapshot, serve, errors: fine"
