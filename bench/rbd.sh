#!/bin/bash
# Benchmark: vhdtool convert of a 2 GiB VHD into a Ceph RBD image and back,
# side by side with qemu-img convert (its rbd driver), interleaved, median
# of REPS runs (default 5).  Prints a table; results are recorded in
# BENCHMARKS.md ("Ceph RBD convert").
#
#   make bench                   # all benchmarks
#   bench/rbd.sh                 # this one (VHDTOOL=build/vhdtool)
#   BENCH_DIR=/mnt/x REPS=7 bench/rbd.sh
#
# The cluster is the tests' throw-away single-node one
# (tests/ceph-cluster.bash: one monitor, one memstore OSD on 127.0.0.1),
# its store enlarged to 6 GiB (CEPH_ARGS), so it needs about 6 GiB of free
# memory and 5 GiB in BENCH_DIR.  The source: 1.5 GiB random data and
# 0.5 GiB zeros as a dynamic VHD (the zero blocks not allocated).  Every
# timed run starts after `sync`, its inputs read into the page cache
# (untimed), the destination image removed beforehand (untimed).  A VHD
# written by vhdtool ends with fdatasync; "qemu-img+sync" times qemu-img
# followed by `sync FILE`.  Writes into RBD are acknowledged by the OSD
# (memstore: in its memory) for both.
set -eu
T=${VHDTOOL:-build/vhdtool}
T=$(cd "$(dirname "$T")" && pwd)/$(basename "$T")
here=$(cd "$(dirname "$0")" && pwd)
REPS=${REPS:-5}
. "$here/lib.bash"
for t in qemu-img ceph-mon ceph-osd rbd; do
	command -v $t >/dev/null || { echo "bench/rbd.sh: $t missing, skipped"; exit 0; }
done
qemu-img --help | grep -qw rbd || { echo "bench/rbd.sh: qemu-img has no rbd driver, skipped"; exit 0; }
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/rbdbench.XXXXXX")
. "$here/../tests/ceph-cluster.bash"
trap 'ceph_cluster_stop; rm -rf "$dir"' EXIT
cd "$dir"
export CEPH_ARGS="--memstore_device_bytes=6442450944"
# A benchmark that cannot run is skipped, not failed (make bench goes on).
ceph_skip() { echo "bench/rbd.sh: skipped: $*"; exit 0; }
ceph_cluster_start "$dir/ceph"
conf=":conf=$CEPH_CONF"

now() { date +%s%N; }
# run NAME CMD...: time CMD (after a sync, with $WARM in the page cache),
# append milliseconds to NAME.times
run() {
	local name=$1 s e
	shift
	sync
	[ -z "$WARM" ] || cat $WARM >/dev/null
	s=$(now)
	"$@" >/dev/null 2>&1 || { echo "bench: $name failed: $*" >&2; exit 1; }
	e=$(now)
	echo "$(( (e - s) / 1000000 ))" >> "$name.times"
}
med() { awk '{ printf "%.2f\n", $1 / 1000 }' "$1.times" | median; }
spread() { sort -n "$1.times" | awk '{a[NR]=$1} END {printf "%.2f-%.2f", a[1]/1000, a[NR]/1000}'; }
rbdrm() { timeout 120 rbd rm --no-progress "rbd/$1" >/dev/null 2>&1 || true; }

echo "building a 2 GiB dynamic VHD: 1.5 GiB random + 0.5 GiB zeros..."
head -c 1536M /dev/urandom > src.raw
truncate -s 2G src.raw
"$T" convert -O dynamic src.raw src.vhd >/dev/null
rm -f src.raw
"$T" convert src.vhd "rbd:rbd/src$conf" >/dev/null   # the source of "back"

v_vt_in() { rbdrm vt; WARM=src.vhd; run vt_in "$T" convert src.vhd "rbd:rbd/vt$conf"; }
v_qemu_in() { rbdrm q; WARM=src.vhd; run qemu_in qemu-img convert -f vpc -O raw src.vhd "rbd:rbd/q$conf"; }
v_vt_out() { WARM=; run vt_out "$T" convert -O dynamic "rbd:rbd/src$conf" o.vhd; rm -f o.vhd; }
v_qemu_out() { WARM=; run qemu_out qemu-img convert -f raw -O vpc -o subformat=dynamic "rbd:rbd/src$conf" q.vhd; rm -f q.vhd; }
v_qemusync_out() { WARM=; run qemusync_out sh -c "qemu-img convert -f raw -O vpc -o subformat=dynamic 'rbd:rbd/src$conf' q.vhd && sync q.vhd"; rm -f q.vhd; }
groups=("vt_in qemu_in" "vt_out qemu_out qemusync_out")

interleave "$REPS" "${groups[@]}"   # order rotated each round (lib.bash)
# The images are the VHD's content.
qemu-img compare -f vpc src.vhd -F raw "rbd:rbd/vt$conf" >/dev/null ||
	{ echo "bench: the image vhdtool wrote differs from the VHD" >&2; exit 1; }

ratio() { awk -v a="$(med "$1")" -v b="$(med "$2")" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "median of $REPS interleaved runs (order rotated each round), seconds ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-40s %7s %7s %9s %7s %9s\n' "operation (peer: qemu-img convert)" "vhdtool" "peer" "peer+sync" "ratio" "ratio/s"
printf '%-40s %7s %7s %9s %7s %9s\n' "dynamic VHD -> rbd:" "$(med vt_in)" "$(med qemu_in)" - "$(ratio vt_in qemu_in)" -
printf '%-40s %7s %7s %9s %7s %9s\n' "rbd: -> dynamic VHD" "$(med vt_out)" "$(med qemu_out)" "$(med qemusync_out)" \
	"$(ratio vt_out qemu_out)" "$(ratio vt_out qemusync_out)"
echo "ratio = vhdtool / qemu-img (below 1: vhdtool faster); ratio/s = vhdtool / (qemu-img + fsync)."
echo "all runs (min-max): in $(spread vt_in) vs $(spread qemu_in); out $(spread vt_out) vs $(spread qemu_out) / $(spread qemusync_out)"
