#!/bin/bash
# Benchmark: requests through bdev_submit() (tests/helpers/bdev-io bench, a
# closed loop like fio's) side by side with fio --ioengine=libaio
# --direct=1 on the same file or device.  Disks, all BENCH_SIZE (default
# 1G) of random data:
#   pt-file   a raw file opened with pt_open (O_DIRECT + libaio)
#   pt-loop   a loop device (--direct-io=on) over a second raw file, pt_open
#   fixed     a fixed VHD opened with VHD_O_DIRECT; fio runs on the same
#             file's data area (bytes 0..size, the footer follows)
#   dynamic   a dynamic VHD, every block allocated, with VHD_O_DIRECT; fio
#             cannot run on it (its writes would land on the BAT), so its
#             fio column is fio on pt-file's raw file
# Workloads: 4 KiB random read and write at QD32 and QD1, 1 MiB sequential
# read at QD8, RUNTIME seconds each (default 3).  In each of REPS rounds
# (default 3) every workload runs on every disk, fio and bdev-io one after
# the other, their order swapped each round; medians are printed as a
# Markdown table with ratios vs fio and the goals of issue 8.  Results
# are recorded in BENCHMARKS.md ("Block requests and pass-through").
#
#   make bench                       # all benchmarks
#   bench/bdev.sh                    # this one (BUILD=build)
#   BENCH_SIZE=1G REPS=3 RUNTIME=3 BENCH_DIR=/tmp bench/bdev.sh
set -eu
BUILD=${BUILD:-build}
IO=$(cd "$BUILD/tests/helpers" && pwd)/bdev-io
T=${VHDTOOL:-$BUILD/vhdtool}
T=$(cd "$(dirname "$T")" && pwd)/$(basename "$T")
REPS=${REPS:-3}
RUNTIME=${RUNTIME:-3}
SIZE=${BENCH_SIZE:-1G}
for t in fio jq losetup; do
	command -v $t >/dev/null || { echo "bench/bdev.sh: $t missing, skipped"; exit 0; }
done
[ -x "$IO" ] || { echo "bench/bdev.sh: $IO not built (make all)" >&2; exit 1; }
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/bdevbench.XXXXXX")
loop=
cleanup() {
	[ -n "$loop" ] && losetup -d "$loop"
	rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
bytes=$(numfmt --from=iec "$SIZE")

echo "building four $SIZE disks..." >&2
head -c "$bytes" /dev/urandom >pt.raw
cp pt.raw loop.raw
"$T" create -t fixed fixed.vhd "$SIZE" >/dev/null
"$T" write fixed.vhd 0 <pt.raw
"$T" create -t dynamic dyn.vhd "$SIZE" >/dev/null
"$T" write dyn.vhd 0 <pt.raw
sync
if ! loop=$(losetup -f --show --direct-io=on loop.raw 2>/dev/null); then
	echo "bench/bdev.sh: cannot attach a loop device, pt-loop skipped" >&2
	loop=
fi

disks="pt-file fixed dynamic"
[ -n "$loop" ] && disks="pt-file pt-loop fixed dynamic"
# path DISK: what bdev-io opens; fio_path DISK: what fio runs on.
path() {
	case $1 in
	pt-file) echo "--pt pt.raw" ;; pt-loop) echo "--pt $loop" ;;
	fixed) echo "--direct fixed.vhd" ;; dynamic) echo "--direct dyn.vhd" ;;
	esac
}
fio_path() {
	case $1 in
	pt-file|dynamic) echo pt.raw ;; pt-loop) echo "$loop" ;; fixed) echo fixed.vhd ;;
	esac
}
# Workloads: NAME RW BS QD
workloads="rr32:randread:4k:32 rr1:randread:4k:1 rw32:randwrite:4k:32 rw1:randwrite:4k:1 seq:read:1m:8"

# Each run appends "IOPS MEDIAN_LATENCY_US" to a file named after it.
run_fio() {   # DISK RW BS QD OUT
	fio --name=b --filename="$(fio_path "$1")" --ioengine=libaio --direct=1 \
		--rw="$2" --bs="$3" --iodepth="$4" --size="$bytes" --time_based \
		--runtime="$RUNTIME" --randseed=7 --lat_percentiles=1 \
		--output-format=json 2>/dev/null |
	jq -r '.jobs[0] | (if .read.io_bytes > 0 then .read else .write end) |
		"\(.iops) \(.lat_ns.percentile["50.000000"] / 1000)"' >>"$5"
}
run_ours() {  # DISK RW BS QD OUT
	# shellcheck disable=SC2046
	"$IO" $(path "$1" | cut -d' ' -f1) bench --rw "$2" --bs "$3" --qd "$4" \
		--seconds "$RUNTIME" "$(path "$1" | cut -d' ' -f2)" |
	jq -r '"\(.iops) \(.lat_median_us)"' >>"$5"
}

for r in $(seq 1 "$REPS"); do
	echo "round $r of $REPS" >&2
	for w in $workloads; do
		IFS=: read -r name rw bs qd <<<"$w"
		for d in $disks; do
			# fio on the raw file serves as dynamic's reference too:
			# run it once per round.
			if [ $((r % 2)) = 1 ]; then
				[ "$d" = dynamic ] || run_fio "$d" "$rw" "$bs" "$qd" "fio.$d.$name"
				run_ours "$d" "$rw" "$bs" "$qd" "ours.$d.$name"
			else
				run_ours "$d" "$rw" "$bs" "$qd" "ours.$d.$name"
				[ "$d" = dynamic ] || run_fio "$d" "$rw" "$bs" "$qd" "fio.$d.$name"
			fi
		done
	done
done

# med FILE COLUMN: median of a column.
med() { awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ref() { [ "$1" = dynamic ] && echo pt-file || echo "$1"; }
printf '\nbdev_submit() vs fio libaio direct, %s disks, medians of %s interleaved rounds of %ss runs\n\n' "$SIZE" "$REPS" "$RUNTIME"
echo "| disk | workload | fio IOPS | bdev-io IOPS | IOPS ratio | fio median lat (us) | bdev-io median lat (us) | lat ratio |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for d in $disks; do
	for w in $workloads; do
		IFS=: read -r name rw bs qd <<<"$w"
		fi=$(med "fio.$(ref "$d").$name" 1); fl=$(med "fio.$(ref "$d").$name" 2)
		oi=$(med "ours.$d.$name" 1); ol=$(med "ours.$d.$name" 2)
		printf '| %s | %s %s QD%s | %.0f | %.0f | %.2f | %.1f | %.1f | %.2f |\n' \
			"$d" "$rw" "$bs" "$qd" "$fi" "$oi" "$(echo "$oi / $fi" | bc -l)" \
			"$fl" "$ol" "$(echo "$ol / $fl" | bc -l)"
	done
done
echo
echo "Goals (issue 8):"
for d in pt-file pt-loop; do
	case " $disks " in *" $d "*) ;; *) continue ;; esac
	printf -- '- %s: QD32 randread IOPS %.2fx fio, randwrite %.2fx (goal >= 0.95); QD1 median latency randread %.2fx fio, randwrite %.2fx (goal <= 1.10)\n' "$d" \
		"$(echo "$(med "ours.$d.rr32" 1) / $(med "fio.$d.rr32" 1)" | bc -l)" \
		"$(echo "$(med "ours.$d.rw32" 1) / $(med "fio.$d.rw32" 1)" | bc -l)" \
		"$(echo "$(med "ours.$d.rr1" 2) / $(med "fio.$d.rr1" 2)" | bc -l)" \
		"$(echo "$(med "ours.$d.rw1" 2) / $(med "fio.$d.rw1" 2)" | bc -l)"
done
for d in fixed:0.95 dynamic:0.80; do
	IFS=: read -r n goal <<<"$d"
	printf -- '- %s vs pt-file IOPS: randread QD32 %.2fx, QD1 %.2fx; randwrite QD32 %.2fx, QD1 %.2fx; seq read %.2fx (goal >= %s)\n' "$n" \
		"$(echo "$(med "ours.$n.rr32" 1) / $(med "ours.pt-file.rr32" 1)" | bc -l)" \
		"$(echo "$(med "ours.$n.rr1" 1) / $(med "ours.pt-file.rr1" 1)" | bc -l)" \
		"$(echo "$(med "ours.$n.rw32" 1) / $(med "ours.pt-file.rw32" 1)" | bc -l)" \
		"$(echo "$(med "ours.$n.rw1" 1) / $(med "ours.pt-file.rw1" 1)" | bc -l)" \
		"$(echo "$(med "ours.$n.seq" 1) / $(med "ours.pt-file.seq" 1)" | bc -l)" "$goal"
done
