#!/bin/bash
# Benchmark: what a live backup (vhdtool backup create REPO --vm CTL) costs
# a running guest.  Each round: a dynamic VHD of BENCH_SIZE (default 256M)
# full of data behind `vmm-mini run` with the built-in guest running
# `records` (8 in flight, a SYNCHRONIZE CACHE every 100 ms, over the whole
# disk); the guest's request rate (the VMM's `stats` srbs) over 2 s, then
# over a full live backup (freeze, snapshot, thaw, read the frozen image,
# merge back live), again over 2 s, then over an incremental live backup.
# ROUNDS rounds (default 3); medians.  User-mode backend unless
# VMM_USER_MODE=0 (KVM).  Results: BENCHMARKS.md ("Live backup: the
# guest's I/O rate").
#
#   BENCH_SIZE=256M ROUNDS=3 BENCH_DIR=/tmp bench/live-backup.sh
set -eu
BUILD=${BUILD:-build}
VMM=$BUILD/bin/vmm-mini
T=${VHDTOOL:-$BUILD/vhdtool}
ROUNDS=${ROUNDS:-3}
SIZE=${BENCH_SIZE:-256M}
MODE=(--user-mode)
[ "${VMM_USER_MODE:-1}" = 0 ] && MODE=()
[ -x "$VMM" ] && [ -x "$T" ] || { echo "bench/live-backup.sh: build first (make all)" >&2; exit 1; }
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/lbbench.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

now() { date +%s.%N; }
srbs() { "$T" vm --output=json "$dir/c.sock" stats | sed -n 's/.*"srbs":\([0-9]*\).*/\1/p'; }
# rate S0 T0 S1 T1: requests a second
rate() { echo "($3 - $1) / ($4 - $2)" | bc -l; }
. "$(dirname "$0")/lib.bash"

bytes=$(numfmt --from=iec "$SIZE")
echo "== live backup: records on a $SIZE disk, $ROUNDS rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))"
: >"$dir/results"
for r in $(seq "$ROUNDS"); do
	rm -rf "$dir"/*.vhd "$dir"/*.ctk "$dir/repo" "$dir/c.sock"
	head -c "$SIZE" /dev/urandom >"$dir/raw"
	"$T" convert -O dynamic "$dir/raw" "$dir/a.vhd" >/dev/null
	rm -f "$dir/raw"
	"$T" backup init "$dir/repo" >/dev/null
	"$VMM" run "${MODE[@]}" --mem 64M --timeout 600 \
		--workload "records,flush_ms=100,progress_ms=0,slots=$((bytes / 4096)),batch=32,qd=8" \
		--disk "$dir/a.vhd,lun=0" --control "$dir/c.sock" 2>"$dir/err" &
	pid=$!
	for _ in $(seq 200); do [ -S "$dir/c.sock" ] && break; sleep 0.05; done
	sleep 1
	line=""
	for kind in full incremental; do
		s0=$(srbs); t0=$(now)
		sleep 2
		s1=$(srbs); t1=$(now)
		"$T" backup create "$dir/repo" --vm "$dir/c.sock" --output=json >"$dir/b.json" 2>"$dir/b.err" ||
			{ echo "bench/live-backup.sh: backup failed:" >&2; cat "$dir/b.err" >&2; exit 1; }
		s2=$(srbs); t2=$(now)
		grep -q "\"kind\": \"$kind\"" "$dir/b.json" ||
			{ echo "bench/live-backup.sh: the $kind backup was not $kind:" >&2; cat "$dir/b.json" >&2; exit 1; }
		before=$(rate "$s0" "$t0" "$s1" "$t1"); during=$(rate "$s1" "$t1" "$s2" "$t2")
		line="$line $(echo "$t2 - $t1" | bc -l) $before $during $(echo "$during / $before" | bc -l)"
	done
	echo "$line" >>"$dir/results"
	kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
	awk -v r="$r" '{ printf "round %d: full %.2f s, guest %.0f -> %.0f req/s (%.2f); incremental %.2f s, %.0f -> %.0f (%.2f)\n", r, $1, $2, $3, $4, $5, $6, $7, $8 }' <<<"$line"
done
col() { awk -v c="$1" '{print $c}' "$dir/results" | median; }
printf '| backup | time (s) | guest req/s before | during | during/before |\n|---|---|---|---|---|\n'
printf '| full | %.2f | %.0f | %.0f | %.2f |\n' "$(col 1)" "$(col 2)" "$(col 3)" "$(col 4)"
printf '| incremental | %.2f | %.0f | %.0f | %.2f |\n' "$(col 5)" "$(col 6)" "$(col 7)" "$(col 8)"
echo "(medians of $ROUNDS rounds; load after: $(cut -d' ' -f1-3 /proc/loadavg))"
