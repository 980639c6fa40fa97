#!/bin/bash
# Benchmark: vhdtool serve --iscsi side by side with tgt (Debian's tgtd,
# rdwr backing store) on the same data, read with iscsi-perf (libiscsi).
# Servers: ours on a raw file, ours on a fixed VHD holding the same data,
# tgt on the raw file.  Server and client are pinned to different cores;
# the servers are interleaved in each round; medians of REPS rounds
# (default 3).  Prints a Markdown table; results are recorded in
# BENCHMARKS.md ("iSCSI export").
#
#   bench/iscsi.sh                       (VHDTOOL=build/vhdtool)
#   BENCH_SIZE=1G REPS=5 RUNTIME=10 bench/iscsi.sh
#
#   4k-rand-qd32   iscsi-perf -r -b 8 -m 32      4 KiB random reads, QD32
#   1m-seq-qd8     iscsi-perf -b 2048 -m 8       1 MiB sequential reads, QD8
set -eu
T=${VHDTOOL:-build/vhdtool}
T=$(cd "$(dirname "$T")" && pwd)/$(basename "$T")
REPS=${REPS:-3}
RUNTIME=${RUNTIME:-5}
SIZE=${BENCH_SIZE:-1G}
SCPU=${SERVER_CPU:-0}
CCPU=${CLIENT_CPU:-1}
for t in iscsi-perf tgtd tgtadm taskset; do
	command -v $t >/dev/null || { echo "bench/iscsi.sh: $t missing, skipped"; exit 0; }
done
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/iscsibench.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		sleep 0.3
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "building a $SIZE disk of random data (raw and fixed VHD)..." >&2
head -c "$(numfmt --from=iec "$SIZE")" /dev/urandom >disk.raw
"$T" convert -O fixed disk.raw disk.vhd >/dev/null

url=
start_ours() {   # IMAGE
	taskset -c "$SCPU" "$T" serve --iscsi --port 0 --read-only "$1" >serve.out 2>serve.err &
	pid=$!
	for _ in $(seq 100); do
		grep -q '^serving' serve.out 2>/dev/null && break
		sleep 0.05
	done
	url=$(sed -n '1s/.* at //p' serve.out)
}
start_tgt() {    # IMAGE
	local port ctl iqn=iqn.2024-01.local.tgt:bench

	port=$(free_port)
	ctl=$((port % 20000 + 1000))   # tgtd -C: a small number
	taskset -c "$SCPU" tgtd -f -C "$ctl" --iscsi portal=127.0.0.1:"$port" >tgt.log 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		tgtadm -C "$ctl" --lld iscsi --op show --mode target >/dev/null 2>&1 && break
		sleep 0.05
	done
	tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$iqn"
	tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$1"
	tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
	url=iscsi://127.0.0.1:$port/$iqn/1
}
stop_server() {
	kill "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}
# perf ARGS...: iops of one run
perf() {
	taskset -c "$CCPU" timeout $((RUNTIME + 20)) iscsi-perf -t "$RUNTIME" "$@" "$url" 2>&1 |
		tr '\r' '\n' | sed -n 's/^iops average \([0-9]*\) .*/\1/p' | tail -1
}

servers="ours-raw ours-fixed tgt-raw"
for r in $(seq "$REPS"); do
	for s in $servers; do
		case $s in
		ours-raw) start_ours disk.raw ;;
		ours-fixed) start_ours disk.vhd ;;
		tgt-raw) start_tgt "$dir/disk.raw" ;;
		esac
		echo "$s 4k $(perf -r -b 8 -m 32)" >>results
		echo "$s 1m $(perf -b 2048 -m 8)" >>results
		stop_server
		echo "round $r: $s done" >&2
	done
done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
m() { awk -v s="$1" -v t="$2" '$1 == s && $2 == t { print $3 }' results | median; }
echo
echo "| server | 4 KiB random read QD32 (IOPS) | 1 MiB sequential read QD8 (MiB/s) |"
echo "|---|---|---|"
for s in $servers; do
	echo "| $s | $(m "$s" 4k) | $(m "$s" 1m) |"
done
r4=$(awk -v a="$(m ours-raw 4k)" -v b="$(m tgt-raw 4k)" 'BEGIN { printf "%.2f", a / b }')
r1=$(awk -v a="$(m ours-raw 1m)" -v b="$(m tgt-raw 1m)" 'BEGIN { printf "%.2f", a / b }')
f4=$(awk -v a="$(m ours-fixed 4k)" -v b="$(m ours-raw 4k)" 'BEGIN { printf "%.2f", a / b }')
f1=$(awk -v a="$(m ours-fixed 1m)" -v b="$(m ours-raw 1m)" 'BEGIN { printf "%.2f", a / b }')
echo
echo "ours/tgt (raw): 4k ${r4}x, 1m ${r1}x; fixed VHD/raw (ours): 4k ${f4}x, 1m ${f1}x"
echo "($REPS rounds of ${RUNTIME}s, medians; $SIZE of random data; server on CPU $SCPU, client on CPU $CCPU)"
