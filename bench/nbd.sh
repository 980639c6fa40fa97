#!/bin/bash
# Benchmark: vhdtool serve side by side with qemu-nbd -f vpc (same VHD)
# and nbdkit file (a raw copy of the same disk), over a unix socket.
# Server and client are pinned to different cores with taskset; the three
# servers are interleaved in each round; medians of REPS rounds (default
# 3).  Prints a Markdown table; results are recorded in BENCHMARKS.md
# ("NBD export").
#
#   make bench                          # all benchmarks
#   bench/nbd.sh                        # this one (VHDTOOL=build/vhdtool)
#   BENCH_SIZE=512M REPS=3 RUNTIME=5 bench/nbd.sh
#
# The disk: BENCH_SIZE (default 2G), the first half random data, the
# second half zeros: a dynamic VHD whose zero half is unallocated, and a
# raw copy whose zero half is a hole (so every server can report it as a
# hole).  All three servers are read-only.
#   nbdcopy  URI null:                 sequential read, nbdcopy's defaults
#   fio nbd  4 KiB random read, QD32 and QD1, RUNTIME seconds (default 5)
set -eu
T=${VHDTOOL:-build/vhdtool}
T=$(cd "$(dirname "$T")" && pwd)/$(basename "$T")
REPS=${REPS:-3}
RUNTIME=${RUNTIME:-5}
SIZE=${BENCH_SIZE:-2G}
SCPU=${SERVER_CPU:-0}
CCPU=${CLIENT_CPU:-1}
for t in qemu-nbd nbdkit nbdcopy nbdinfo fio taskset; do
	command -v $t >/dev/null || { echo "bench/nbd.sh: $t missing, skipped"; exit 0; }
done
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/nbdbench.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
sock=$dir/sock
uri="nbd+unix:///?socket=$sock"

bytes=$(numfmt --from=iec "$SIZE")
half=$((bytes / 2))
echo "building a $SIZE disk: $((half >> 20)) MiB random, then zeros..." >&2
head -c "$half" /dev/urandom >rand.bin
"$T" create -t dynamic disk.vhd "$SIZE" >/dev/null
"$T" write disk.vhd 0 <rand.bin
cp rand.bin disk.raw
truncate -s "$bytes" disk.raw
rm rand.bin
cmp <("$T" read disk.vhd 0 "$bytes") disk.raw || { echo "images differ" >&2; exit 1; }
sync

start() {
	case $1 in
	vhdtool) taskset -c "$SCPU" "$T" serve --read-only --socket "$sock" disk.vhd >/dev/null & ;;
	qemu-nbd) taskset -c "$SCPU" qemu-nbd -r -t -e 16 -f vpc -k "$sock" disk.vhd & ;;
	nbdkit) taskset -c "$SCPU" nbdkit -f -r -U "$sock" file disk.raw & ;;
	esac
	pid=$!
	for _ in $(seq 200); do
		nbdinfo --size "$uri" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "$1 did not start" >&2
	exit 1
}
stop() {
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	rm -f "$sock"
}
now() { date +%s%N; }
# fio_iops QD: 4 KiB random read IOPS
fio_iops() {
	taskset -c "$CCPU" fio --name=rr --ioengine=nbd --uri="$uri" --rw=randread \
		--bs=4k --iodepth="$1" --size="$bytes" --time_based --runtime="$RUNTIME" \
		--randseed=7 --output-format=terse | awk -F';' '/^3;/ { print $8 }'
}

servers="vhdtool qemu-nbd nbdkit"
for r in $(seq 1 "$REPS"); do
	echo "round $r of $REPS" >&2
	for s in $servers; do
		start "$s"
		t0=$(now)
		taskset -c "$CCPU" nbdcopy "$uri" null:
		t1=$(now)
		echo "$(( (t1 - t0) / 1000000 ))" >>"$s.copy"
		fio_iops 32 >>"$s.qd32"
		fio_iops 1 >>"$s.qd1"
		stop
	done
done

median() { sort -n "$1" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
printf '\nNBD export, %s disk (half random, half zeros), medians of %s interleaved rounds\n\n' "$SIZE" "$REPS"
echo "| server | nbdcopy to null: (s) | fio 4K randread QD32 (IOPS) | fio 4K randread QD1 (IOPS) |"
echo "|---|---|---|---|"
for s in $servers; do
	printf '| %s | %.2f | %s | %s |\n' "$s" \
		"$(median "$s.copy" | awk '{ print $1 / 1000 }')" \
		"$(median "$s.qd32")" "$(median "$s.qd1")"
done
