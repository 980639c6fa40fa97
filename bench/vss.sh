#!/bin/bash
# Benchmark: a live backup's freeze as the guest sees it.  `vmm-mini run`
# boots the built-in guest running the records workload (busy: writes,
# read-backs and a flush every 100 ms on LUNS dynamic VHDs of 64 MiB);
# REPS times, a second apart, `backup-snapshot` freezes the guest through
# its VSS service, snapshots every LUN and thaws it, then `merge` folds
# each child back.  Per backup:
#   window  FREEZE sent -> THAW sent (the answer's window_us)
#   held    the VMM held the guest's I/O (drain -> commit -> release: held_us)
#   stall   the guest's own measure: its longest time between two completed
#           writes around that freeze (the records' "writes stalled" line:
#           from the last write before it flushed for the FREEZE to the
#           first write completed after the THAW; RDTSC)
# Prints the medians and maxima.  KVM when /dev/kvm opens, else the
# user-mode backend (named in the output).  Results: BENCHMARKS.md ("Live
# backup: freeze window").
#
#   REPS=7 LUNS=2 bench/vss.sh
set -u
if ! { [ -c /dev/kvm ] && ( exec 3<>/dev/kvm ) 2>/dev/null; }; then
	export VMM_USER_MODE=1
fi
BUILD=${BUILD:-build}
# the e2e tests' helpers: scratch $dir, $pid cleanup, start_vmm, ctl, wait_console
. "$(dirname "$0")/../tests/e2e/vmm-common.bash"
REPS=${REPS:-7}
LUNS=${LUNS:-2}
backend=kvm
[ "${VMM_USER_MODE:-0}" = 1 ] && backend=user-mode
[ -n "$PY3" ] || { echo "bench/vss.sh: python3 missing, skipped"; exit 0; }
die() { echo "bench/vss.sh: $*" >&2; exit 1; }

disks=()
for l in $(seq 0 $((LUNS - 1))); do
	"$VHDTOOL" create "$dir/d$l.vhd" 64M >/dev/null || die "vhdtool create"
	disks+=(--disk "$dir/d$l.vhd,lun=$l")
done
start_vmm --mem 128M --timeout 600 --workload records,flush_ms=100 "${disks[@]}" \
	--control "$dir/c.sock"
wait_console 20 'records: flushed' || { cat "$dir/err" >&2; die "no records"; }
sleep 1
load0=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$dir/rows"
for i in $(seq "$REPS"); do
	ans=$(ctl "$dir/c.sock" '{"cmd":"backup-snapshot"}')
	echo "$ans" | grep -q '"consistency":"application"' || die "backup $i: $ans"
	wait_console 10 "records: vss: thawed \\(freeze $i\\)" || die "the guest reported no thaw $i"
	win=$(echo "$ans" | sed 's/.*"window_us":\([0-9]*\).*/\1/')
	held=$(echo "$ans" | sed 's/.*"held_us":\([0-9]*\).*/\1/')
	stall=$(sed -n "s/.*records: vss: thawed (freeze $i):.* writes stalled \\([0-9]*\\) us.*/\\1/p" "$dir/err")
	echo "$win $held $stall" >>"$dir/rows"
	for l in $(seq 0 $((LUNS - 1))); do
		ctl "$dir/c.sock" "{\"cmd\":\"merge\",\"lun\":$l}" | grep -q '"ok":true' ||
			die "merge $l failed"
	done
	sleep 1
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
ctl "$dir/c.sock" '{"cmd":"quit"}' >/dev/null
stop_vmm 0
[ "$rc" = 0 ] || { tail "$dir/err" >&2; die "vmm-mini exited $rc"; }
grep -q "records: stopped: .* 0 mismatches, 0 I/O errors" "$dir/err" || die "the guest saw errors"

# column N of the rows: "median max" in ms with one decimal
stats() {
	awk -v c="$1" '{ print $c }' "$dir/rows" | sort -g |
		awk '{ v[NR] = $1 } END { printf "%.1f %.1f", v[int((NR + 1) / 2)] / 1000, v[NR] / 1000 }'
}
read -r wmed wmax <<<"$(stats 1)"
read -r hmed hmax <<<"$(stats 2)"
read -r smed smax <<<"$(stats 3)"
echo "live backup freeze ($backend backend, $LUNS LUNs, $REPS backups, load $load0 -> $load1)"
echo "| backend | LUNs | backups | window median / max (ms) | I/O held median / max (ms) | guest write stall median / max (ms) |"
echo "|---|---|---|---|---|---|"
echo "| $backend | $LUNS | $REPS | $wmed / $wmax | $hmed / $hmax | $smed / $smax |"
