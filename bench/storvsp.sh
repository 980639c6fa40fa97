#!/bin/bash
# Benchmark: the ring path.  tests/helpers/storvsc-client (the guest side,
# its own process, pinned to CPU 1) drives `vmm-mini host` (pinned to CPU
# 0, service threads polling 50 us then sleeping) through the vmbus rings
# -> storvsp -> scsi -> bdev, on three disks of BENCH_SIZE (default 256M)
# holding the same random bytes:
#   pt-file   a raw file (pass-through, O_DIRECT + libaio)
#   fixed     a fixed VHD   (vhdtool convert -O fixed from the raw file)
#   dynamic   a dynamic VHD (vhdtool convert -O dynamic: every block data)
# side by side with fio --ioengine=libaio --direct=1 (pinned to CPU 1) on
# the raw file.  Workloads, RUNTIME seconds each (default 2): 4 KiB random
# read at QD1, QD32, QD64; 4 KiB random write at QD32; 1 MiB sequential
# read at QD8.  ROUNDS rounds (default 3), each running fio and the three
# disks one after the other (interleaved, so load changes hit all alike);
# the table has the medians, the load average before and after, and the
# per-request CPU cost of host and client and the host's context switches
# a request (all its threads, from /proc) on the pass-through file.
# Results: BENCHMARKS.md ("Storage VSP").
#
#   BENCH_SIZE=256M RUNTIME=2 ROUNDS=3 BENCH_DIR=/tmp bench/storvsp.sh
set -eu
BUILD=${BUILD:-build}
VMM=$BUILD/bin/vmm-mini
CL=$BUILD/tests/helpers/storvsc-client
T=${VHDTOOL:-$BUILD/vhdtool}
RUNTIME=${RUNTIME:-2}
ROUNDS=${ROUNDS:-3}
SIZE=${BENCH_SIZE:-256M}
for t in fio; do
	command -v $t >/dev/null || { echo "bench/storvsp.sh: $t missing, skipped"; exit 0; }
done
[ -x "$VMM" ] && [ -x "$CL" ] || { echo "bench/storvsp.sh: build first (make all)" >&2; exit 1; }
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/vspbench.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"; rm -rf "$dir"; }
trap cleanup EXIT

head -c "$SIZE" /dev/urandom > "$dir/raw.img"
# the same bytes in every disk: reads of a VHD hit data, not holes
"$T" convert -O fixed "$dir/raw.img" "$dir/fixed.vhd" >/dev/null
"$T" convert -O dynamic "$dir/raw.img" "$dir/dyn.vhd" >/dev/null
cmp <("$T" read "$dir/dyn.vhd" 0 1048576) <(head -c 1048576 "$dir/raw.img") ||
	{ echo "bench/storvsp.sh: dynamic VHD differs from the raw file" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# context switches of every thread of process $1
csw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'; }
hz=$(getconf CLK_TCK)

start_host() {
	"$VMM" host --listen "$dir/s.sock" --cpu 0 --subchannels 0 --disk "$1" 2>>"$dir/vmm.log" &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
}
stop_host() { kill -TERM "$pid"; wait "$pid"; pid=; }

# client workload: MODE BS QD ->
#   "iops host_us_per_req client_us_per_req host_ctx_switches_per_req"
vsp_run() {
	local t0 t1 s0 s1 out n
	t0=$(ticks "$pid")
	s0=$(csw "$pid")
	out=$("$CL" "$dir/s.sock" bench 0 "$1" "$2" "$3" "$RUNTIME" 1)
	t1=$(ticks "$pid")
	s1=$(csw "$pid")
	n=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/')
	echo "$(echo "$out" | sed 's/iops=\([0-9]*\).*/\1/') \
$(echo "scale=2; ($t1 - $t0) * 1000000 / $hz / $n" | bc) \
$(echo "$out" | sed 's/.*client_cpu_us_per_req=\([0-9.]*\).*/\1/') \
$(awk -v a="$s1" -v b="$s0" -v n="$n" 'BEGIN { printf "%.2f", (a - b) / n }')"
}

fio_run() {
	fio --name=b --filename="$dir/raw.img" --ioengine=libaio --direct=1 --rw="$1" \
	    --bs="$2" --iodepth="$3" --runtime="$RUNTIME" --time_based --cpus_allowed=1 \
	    --output-format=terse --terse-version=3 2>/dev/null |
		awk -F';' -v rw="$1" '{ if (rw ~ /write/) print $49; else print $8 }'
}

. "$(dirname "$0")/lib.bash"

workloads="randread:4096:1 randread:4096:32 randread:4096:64 randwrite:4096:32 read:1048576:8"
declare -A R
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
	for w in $workloads; do
		IFS=: read -r mode bs qd <<<"$w"
		R[fio,$w]+="$(fio_run "$mode" "$bs" "$qd")"$'\n'
	done
	for disk in pt-file fixed dynamic; do
		case $disk in
		pt-file) img=$dir/raw.img ;;
		fixed) img=$dir/fixed.vhd ;;
		dynamic) img=$dir/dyn.vhd ;;
		esac
		start_host "$img"
		for w in $workloads; do
			IFS=: read -r mode bs qd <<<"$w"
			R[$disk,$w]+="$(vsp_run "$mode" "$bs" "$qd")"$'\n'
		done
		stop_host
	done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# column K (1 = IOPS, 2 = host us/req, 3 = client us/req, 4 = host
# context switches/req) of a cell's runs
col() { printf '%s' "${R[$1]}" | awk -v k="$2" 'NF { print $k }' | median; }

echo "$ROUNDS rounds, ${RUNTIME}s a workload, $SIZE disks; load average before: $load0, after: $load1"
echo
echo "| workload | fio IOPS | pt-file IOPS (x fio) | fixed IOPS (x pt) | dynamic IOPS (x pt) | host CPU us/req (pt) | client CPU us/req (pt) | host ctx sw/req (pt) |"
echo "|---|---|---|---|---|---|---|---|"
for w in $workloads; do
	IFS=: read -r mode bs qd <<<"$w"
	f=$(printf '%s' "${R[fio,$w]}" | median)
	p=$(col "pt-file,$w" 1); ph=$(col "pt-file,$w" 2); pc=$(col "pt-file,$w" 3)
	ps=$(col "pt-file,$w" 4)
	x=$(col "fixed,$w" 1)
	d=$(col "dynamic,$w" 1)
	printf "| %s %s QD%s | %s | %s (%.2f) | %s (%.2f) | %s (%.2f) | %s | %s | %s |\n" "$mode" "$bs" "$qd" \
		"$f" "$p" "$(echo "$p / $f" | bc -l)" "$x" "$(echo "$x / $p" | bc -l)" \
		"$d" "$(echo "$d / $p" | bc -l)" "$ph" "$pc" "$ps"
done
