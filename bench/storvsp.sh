#!/bin/bash
# Benchmark: the ring path.  tests/helpers/storvsc-client (the guest side,
# its own process, pinned to CPU 1) drives `vmm-mini host` (service threads
# pinned to CPU 0, polling 50 us then sleeping) through the vmbus rings ->
# storvsp -> scsi -> bdev, on three disks of BENCH_SIZE (default 512M):
#   pt-file   a raw file (pass-through, O_DIRECT + libaio)
#   fixed     a fixed VHD (VHD_O_DIRECT)
#   dynamic   a dynamic VHD, every block written first
# side by side with fio --ioengine=libaio --direct=1 (pinned to CPU 1) on
# the raw file.  Workloads, RUNTIME seconds each (default 3): 4 KiB random
# read at QD1, QD32, QD64; 4 KiB random write at QD32; 1 MiB sequential
# read at QD8.  Prints a Markdown table with ratios and the per-request
# CPU cost of host and client.  Results: BENCHMARKS.md ("Storage VSP").
#
#   BENCH_SIZE=512M RUNTIME=3 BENCH_DIR=/tmp bench/storvsp.sh
set -eu
BUILD=${BUILD:-build}
VMM=$BUILD/bin/vmm-mini
CL=$BUILD/tests/helpers/storvsc-client
T=${VHDTOOL:-$BUILD/vhdtool}
RUNTIME=${RUNTIME:-3}
SIZE=${BENCH_SIZE:-512M}
for t in fio; do
	command -v $t >/dev/null || { echo "bench/storvsp.sh: $t missing, skipped"; exit 0; }
done
[ -x "$VMM" ] && [ -x "$CL" ] || { echo "bench/storvsp.sh: build first (make all)" >&2; exit 1; }
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/vspbench.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"; rm -rf "$dir"; }
trap cleanup EXIT

head -c "$SIZE" /dev/urandom > "$dir/raw.img" 2>/dev/null || { dd if=/dev/urandom of="$dir/raw.img" bs=1M count=512 status=none; }
"$T" create -t fixed "$dir/fixed.vhd" "$SIZE" >/dev/null
"$T" create "$dir/dyn.vhd" "$SIZE" >/dev/null

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

start_host() {
	"$VMM" host --listen "$dir/s.sock" --cpu 0 --subchannels 0 --disk "$1" 2>>"$dir/vmm.log" &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
}
stop_host() { kill -TERM "$pid"; wait "$pid"; pid=; }

# client workload: MODE BS QD -> "iops host_us_per_req client_us_per_req"
vsp_run() {
	local t0 t1 out n
	t0=$(ticks "$pid")
	out=$("$CL" "$dir/s.sock" bench 0 "$1" "$2" "$3" "$RUNTIME" 1)
	t1=$(ticks "$pid")
	n=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/')
	echo "$(echo "$out" | sed 's/iops=\([0-9]*\).*/\1/') \
$(echo "scale=2; ($t1 - $t0) * 1000000 / $hz / $n" | bc) \
$(echo "$out" | sed 's/.*client_cpu_us_per_req=\([0-9.]*\).*/\1/')"
}

fio_run() {
	fio --name=b --filename="$dir/raw.img" --ioengine=libaio --direct=1 --rw="$1" \
	    --bs="$2" --iodepth="$3" --runtime="$RUNTIME" --time_based --cpus_allowed=1 \
	    --output-format=terse --terse-version=3 2>/dev/null |
		awk -F';' -v rw="$1" '{ if (rw ~ /write/) print $49; else print $8 }'
}

workloads="randread:4096:1 randread:4096:32 randread:4096:64 randwrite:4096:32 read:1048576:8"
declare -A R
for disk in pt-file fixed dynamic; do
	case $disk in
	pt-file) img=$dir/raw.img ;;
	fixed) img=$dir/fixed.vhd ;;
	dynamic) img=$dir/dyn.vhd ;;
	esac
	start_host "$img"
	if [ $disk = dynamic ]; then
		"$CL" "$dir/s.sock" bench 0 read 1048576 8 2 1 >/dev/null	# warm up
		# allocate every block: one sequential write pass
		"$CL" "$dir/s.sock" verify 0 1 $(( $(numfmt --from=iec "$SIZE") >> 20 )) >/dev/null
	fi
	for w in $workloads; do
		IFS=: read -r mode bs qd <<<"$w"
		R[$disk,$w]=$(vsp_run "$mode" "$bs" "$qd")
	done
	stop_host
done
for w in $workloads; do
	IFS=: read -r mode bs qd <<<"$w"
	R[fio,$w]=$(fio_run "$mode" "$bs" "$qd")
done

echo "| workload | fio IOPS | pt-file IOPS (x fio) | fixed IOPS (x pt) | dynamic IOPS (x pt) | host CPU us/req (pt) | client CPU us/req (pt) |"
echo "|---|---|---|---|---|---|---|"
for w in $workloads; do
	IFS=: read -r mode bs qd <<<"$w"
	f=${R[fio,$w]}
	read -r p ph pc <<<"${R[pt-file,$w]}"
	read -r x _ _ <<<"${R[fixed,$w]}"
	read -r d _ _ <<<"${R[dynamic,$w]}"
	printf "| %s %s QD%s | %s | %s (%.2f) | %s (%.2f) | %s (%.2f) | %s | %s |\n" "$mode" "$bs" "$qd" \
		"$f" "$p" "$(echo "$p / $f" | bc -l)" "$x" "$(echo "$x / $p" | bc -l)" \
		"$d" "$(echo "$d / $p" | bc -l)" "$ph" "$pc"
done
