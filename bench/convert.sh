#!/bin/bash
# Benchmark: vhdtool convert / merge / compact side by side with their
# peers, interleaved, median of REPS runs (default 5).  Prints a table;
# results are recorded in BENCHMARKS.md ("convert, merge, compact").
#
#   make bench                   # all benchmarks
#   bench/convert.sh             # this one (VHDTOOL=build/vhdtool)
#   BENCH_DIR=/mnt/x REPS=7 bench/convert.sh
#
# Needs about 9 GiB free in BENCH_DIR (default: a folder under /tmp).
# Every timed run starts after `sync`, so no run pays for another's
# writeback, and with its input files read into the page cache (untimed), so
# no run pays for reading what another evicted.  vhdtool always ends with fdatasync of its output (and fsync
# of the folder); qemu-img does not sync by default, so "qemu-img+sync"
# times qemu-img followed by `sync FILE` (fsync) for a like-for-like view.
set -eu
T=${VHDTOOL:-build/vhdtool}
T=$(cd "$(dirname "$T")" && pwd)/$(basename "$T")
REPS=${REPS:-5}
. "$(dirname "$0")/lib.bash"
command -v qemu-img >/dev/null || { echo "bench/convert.sh: qemu-img missing, skipped"; exit 0; }
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/vhdbench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"

now() { date +%s%N; }
# run NAME CMD...: time CMD (after a sync, with the inputs in the page
# cache), append milliseconds to NAME.times
run() {
	local name=$1 s e
	shift
	sync
	cat $WARM > /dev/null
	s=$(now)
	"$@" >/dev/null 2>&1 || { echo "bench: $name failed: $*" >&2; exit 1; }
	e=$(now)
	echo "$(( (e - s) / 1000000 ))" >> "$name.times"
}
median() { sort -n "$1.times" | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f", m/1000}'; }
spread() { sort -n "$1.times" | awk '{a[NR]=$1} END {printf "%.2f-%.2f", a[1]/1000, a[NR]/1000}'; }

echo "building a 2 GiB raw image: 1 GiB random + 1 GiB zeros (written)..."
head -c 1G /dev/urandom > src.raw
head -c 1G /dev/zero >> src.raw
"$T" convert -O dynamic src.raw src.vhd >/dev/null

# merge: a 2 GiB parent holding the image above, a child with 512 MiB of
# writes (half over the parent's data, half over its zeros).
head -c 512M /dev/urandom > w512
"$T" create parent.vhd 2G >/dev/null
"$T" write parent.vhd 0 < src.raw
"$T" snapshot parent.vhd child.vhd
"$T" write child.vhd 768M < w512
cp src.raw parent.raw
# compact: a dynamic disk whose every other 2 MiB block is zeros, all
# blocks allocated (zeros written).
"$T" create half.vhd 2G >/dev/null
for i in $(seq 0 2 1023); do
	dd if=src.raw bs=2M skip=$((i / 2)) count=1 status=none
	head -c 2M /dev/zero
done | "$T" write half.vhd 0
mkdir tpl && mv parent.vhd child.vhd parent.raw half.vhd tpl/
sync

# One function per measured variant: set up its inputs, warm them, time the
# command, remove its output (untimed, so every run starts with the memory
# the previous one freed).
qconv() { qemu-img convert "$@"; }
v_vt_r2d() { WARM=src.raw; run vt_r2d "$T" convert -O dynamic src.raw o.vhd; rm -f o.vhd; }
v_qemu_r2d() { WARM=src.raw; run qemu_r2d qconv -f raw -O vpc -o subformat=dynamic src.raw q.vhd; rm -f q.vhd; }
v_qemusync_r2d() { WARM=src.raw; run qemusync_r2d sh -c 'qemu-img convert -f raw -O vpc -o subformat=dynamic src.raw q.vhd && sync q.vhd'; rm -f q.vhd; }
v_vt_d2r() { WARM=src.vhd; run vt_d2r "$T" convert -O raw src.vhd o.raw; rm -f o.raw; }
v_qemu_d2r() { WARM=src.vhd; run qemu_d2r qconv -f vpc -O raw src.vhd q.raw; rm -f q.raw; }
v_qemusync_d2r() { WARM=src.vhd; run qemusync_d2r sh -c 'qemu-img convert -f vpc -O raw src.vhd q.raw && sync q.raw'; rm -f q.raw; }
v_vt_merge() { cp tpl/parent.vhd tpl/child.vhd .; WARM="parent.vhd child.vhd"; run vt_merge "$T" merge child.vhd; rm -f parent.vhd child.vhd; }
v_vt_mergekeep() { cp tpl/parent.vhd tpl/child.vhd .; WARM="parent.vhd child.vhd"; run vt_mergekeep "$T" merge --keep child.vhd; rm -f parent.vhd child.vhd; }
v_dd_merge() { cp tpl/parent.raw .; WARM="parent.raw w512"; run dd_merge dd if=w512 of=parent.raw bs=2M seek=384 conv=notrunc status=none; rm -f parent.raw; }
v_ddsync_merge() { cp tpl/parent.raw .; WARM="parent.raw w512"; run ddsync_merge dd if=w512 of=parent.raw bs=2M seek=384 conv=notrunc,fdatasync status=none; rm -f parent.raw; }
v_vt_compact() { cp tpl/half.vhd .; WARM=half.vhd; run vt_compact "$T" compact half.vhd; rm -f half.vhd; }
v_vt_copycompact() { WARM=tpl/half.vhd; run vt_copycompact "$T" convert -O dynamic tpl/half.vhd c.vhd; rm -f c.vhd; }
v_qemu_copycompact() { WARM=tpl/half.vhd; run qemu_copycompact qconv -f vpc -O vpc -o subformat=dynamic tpl/half.vhd c.vhd; rm -f c.vhd; }
groups=("vt_r2d qemu_r2d qemusync_r2d" "vt_d2r qemu_d2r qemusync_d2r"
	"vt_merge vt_mergekeep dd_merge ddsync_merge"
	"vt_compact vt_copycompact qemu_copycompact")

# Interleaved, the order rotated each round (bench/lib.bash).
interleave "$REPS" "${groups[@]}"

ratio() { awk -v a="$(median "$1")" -v b="$(median "$2")" 'BEGIN { printf "%.2f", a / b }'; }
row() { # LABEL VT PEER PEERSYNC
	local ps=- rs=-
	[ -n "$4" ] && ps=$(median "$4") rs=$(ratio "$2" "$4")
	printf '%-45s %7s %7s %9s %7s %9s\n' "$1" "$(median "$2")" "$(median "$3")" "$ps" \
		"$(ratio "$2" "$3")" "$rs"
}
echo
echo "median of $REPS interleaved runs (order rotated each round), seconds ($(nproc) CPUs, $(df -T . | awk 'NR==2 {print $2}'), load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-45s %7s %7s %9s %7s %9s\n' "operation (peer)" "vhdtool" "peer" "peer+sync" "ratio" "ratio/s"
row "raw -> dynamic (qemu-img -O vpc)" vt_r2d qemu_r2d qemusync_r2d
row "dynamic -> raw (qemu-img -O raw)" vt_d2r qemu_d2r qemusync_d2r
row "merge 512 MiB (dd conv=notrunc)" vt_merge dd_merge ddsync_merge
row "merge --keep 512 MiB (dd conv=notrunc)" vt_mergekeep dd_merge ddsync_merge
row "compact 2 GiB, half zero (vhdtool convert)" vt_compact vt_copycompact ""
row "compact 2 GiB, half zero (qemu-img convert)" vt_compact qemu_copycompact ""
echo "ratio = vhdtool / peer; ratio/s = vhdtool / (peer + fsync).  vhdtool always"
echo "ends with fdatasync; merge also deletes the merged child (--keep: not)."
echo "all runs (min-max): r2d $(spread vt_r2d) vs $(spread qemu_r2d) / $(spread qemusync_r2d);" \
	"d2r $(spread vt_d2r) vs $(spread qemu_d2r) / $(spread qemusync_d2r);" \
	"merge $(spread vt_merge), keep $(spread vt_mergekeep) vs $(spread dd_merge) / $(spread ddsync_merge);" \
	"compact $(spread vt_compact) vs $(spread vt_copycompact), $(spread qemu_copycompact)"
