#!/bin/bash
# Benchmark: the whole virtual path.  The built-in guest's `randrw`
# workload (vmm-mini run: guest -> VMBus ring -> storvsp -> scsi -> bdev ->
# disk) against fio --ioengine=libaio --direct=1 run on the host on the
# same bytes, side by side, interleaved round by round:
#   pt-file   a raw file (pass-through, O_DIRECT + libaio)
#   fixed     a fixed VHD   (vhdtool convert -O fixed from the raw file)
#   dynamic   a dynamic VHD (vhdtool convert -O dynamic: every block data)
# Workloads, RUNTIME seconds each (default 2): 4 KiB random 50% read/50%
# write at QD1 and QD32, 1 MiB sequential read at QD8.  Medians of ROUNDS
# (default 3).  The guest measures its own IOPS (RDTSC); "mean us" is
# QD / IOPS for the pass-through file in the guest and for host fio.
#
# Backend: KVM when /dev/kvm works, else the user-mode backend
# (vmm-mini run --user-mode: the same guest code as a host thread, doorbells
# as trapped OUTs) -- the table says which.  With KVM the VM's exit count
# (--stats) gives exits per request.
# Results: BENCHMARKS.md ("Whole virtual path").
#
#   BENCH_SIZE=256M RUNTIME=2 ROUNDS=3 BENCH_DIR=/tmp bench/vm.sh
set -eu
BUILD=${BUILD:-build}
VMM=$BUILD/bin/vmm-mini
T=${VHDTOOL:-$BUILD/vhdtool}
RUNTIME=${RUNTIME:-2}
ROUNDS=${ROUNDS:-3}
SIZE=${BENCH_SIZE:-256M}
command -v fio >/dev/null || { echo "bench/vm.sh: fio missing, skipped"; exit 0; }
[ -x "$VMM" ] || { echo "bench/vm.sh: build first (make all)" >&2; exit 1; }
backend=kvm
mode=()
if ! { [ -c /dev/kvm ] && ( exec 3<>/dev/kvm ) 2>/dev/null; }; then
	backend="user-mode (no usable /dev/kvm here)"
	mode=(--user-mode)
fi
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/vmbench.XXXXXX")
trap 'rm -rf "$dir"' EXIT

head -c "$SIZE" /dev/urandom > "$dir/raw.img"
"$T" convert -O fixed "$dir/raw.img" "$dir/fixed.vhd" >/dev/null
"$T" convert -O dynamic "$dir/raw.img" "$dir/dyn.vhd" >/dev/null
declare -A DISK=([pt-file]=$dir/raw.img [fixed]=$dir/fixed.vhd [dynamic]=$dir/dyn.vhd)
# Written through the page cache just now: write it out and drop it, so
# that neither side's O_DIRECT I/O starts by flushing or invalidating
# cached pages of the files.
sync
for f in "${DISK[@]}"; do dd if="$f" iflag=nocache count=0 status=none; done

# guest DISK WORKLOAD-ARGS -> "iops p50_us exits_per_req"
guest() {
	local err=$dir/vm.err iops p50 req exits
	timeout -k 2 $((RUNTIME + 30)) "$VMM" run "${mode[@]}" --mem 64M --timeout $((RUNTIME + 20)) \
		--stats --disk "$1" --workload "randrw,seconds=$RUNTIME,$2" 2>"$err" ||
		{ echo "bench/vm.sh: vmm-mini failed:" >&2; cat "$err" >&2; exit 1; }
	iops=$(sed -n 's/.*randrw: lun 0, .* \([0-9]*\) requests in .* \([0-9]*\) IOPS.*/\2/p' "$err")
	req=$(sed -n 's/.*randrw: lun 0, .*: \([0-9]*\) requests in.*/\1/p' "$err")
	p50=$(sed -n 's/.*randrw: latency us: p50 \([0-9]*\),.*/\1/p' "$err")
	exits=$(sed -n 's/^stats:.* exits=\([0-9]*\).*/\1/p' "$err")
	[ -n "$iops" ] && [ -n "$p50" ] || { echo "bench/vm.sh: no result:" >&2; cat "$err" >&2; exit 1; }
	if [ -n "$exits" ] && [ "${req:-0}" -gt 0 ]; then
		exits=$(echo "scale=2; $exits / $req" | bc)
	else
		exits=n/a
	fi
	echo "$iops $p50 $exits"
}

# fio RW BS QD -> "iops" (reads + writes)
fio_run() {
	fio --name=b --filename="$dir/raw.img" --ioengine=libaio --direct=1 --rw="$1" \
	    --rwmixread=50 --bs="$2" --iodepth="$3" --runtime="$RUNTIME" --time_based \
	    --output-format=terse --terse-version=3 2>/dev/null |
		awk -F';' '{ print $8 + $49 }'
}

. "$(dirname "$0")/lib.bash"

workloads="randrw:4096:1 randrw:4096:32 read:1048576:8"
declare -A R
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
	for w in $workloads; do
		IFS=: read -r rw bs qd <<<"$w"
		R[$w,fio]+="$(fio_run "$rw" "$bs" "$qd")"$'\n'
		if [ "$rw" = read ]; then g="bs=$bs,qd=$qd,seq=1,read=100"; else g="bs=$bs,qd=$qd,read=50"; fi
		for d in pt-file fixed dynamic; do
			R[$w,$d]+="$(guest "${DISK[$d]}" "$g")"$'\n'
		done
	done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

col() { echo -n "${R[$1]}" | awk -v c="$2" 'NF { print $c }' | median; }
echo "Whole virtual path, $SIZE disks, ${RUNTIME}s a run, medians of $ROUNDS interleaved rounds"
echo "backend: $backend; load average before $load0, after $load1"
printf '%-22s %10s %10s %10s %10s %8s %8s %8s %12s %12s\n' workload "host fio" pt-file fixed dynamic \
	"pt/fio" "fix/pt" "dyn/pt" "mean us g/h" "exits/req"
for w in $workloads; do
	IFS=: read -r _ _ qd <<<"$w"
	f=$(col "$w,fio" 1); p=$(col "$w,pt-file" 1); x=$(col "$w,fixed" 1); y=$(col "$w,dynamic" 1)
	printf '%-22s %10s %10s %10s %10s %8s %8s %8s %12s %12s\n' "$w" "$f" "$p" "$x" "$y" \
		"$(echo "scale=2; $p / $f" | bc)" "$(echo "scale=2; $x / $p" | bc)" \
		"$(echo "scale=2; $y / $p" | bc)" "$((qd * 1000000 / p))/$((qd * 1000000 / f))" \
		"$(echo -n "${R[$w,pt-file]}" | awk 'NF { print $3 }' | sort | uniq | tail -1)"
done
