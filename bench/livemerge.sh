#!/bin/bash
# Benchmark: live merge (vmm-mini's `merge` control command) against an
# offline `vhdtool merge` of the same data, and what the merge costs the
# guest's I/O.  Each round: a dynamic VHD of BENCH_SIZE (default 128M)
# behind `vmm-mini run` with the built-in guest running WORKLOAD (default:
# records over the whole disk, 8 in flight, a SYNCHRONIZE CACHE every
# 100 ms); a snapshot; the guest writes until the child holds CHILD_MB
# (default 32) MiB; the guest is paused while the child and its parent
# are copied aside (what the files hold as of the guest's last flush:
# BAT updates wait for a flush); then the guest's request rate is taken
# over 2 s (the VMM's `stats` srbs), the live merge runs (time, time I/O
# was held, passes, bytes copied), and the rate over the merge is taken
# the same way; the VMM is killed, and `vhdtool merge` runs on the copy
# (the merge before the live one held the LUN's I/O for all of that).
# ROUNDS rounds (default 5), live and offline alternating; the table has
# the medians.  A workload that never flushes (randrw) leaves the copy
# without its blocks: its offline column means nothing.
# The user-mode backend unless VMM_USER_MODE=0 (KVM).
# Results: BENCHMARKS.md ("Live merge").
#
#   BENCH_SIZE=128M CHILD_MB=32 ROUNDS=5 BENCH_DIR=/tmp bench/livemerge.sh
#   WORKLOAD=randrw,bs=65536,qd=8,read=30,seconds=500 bench/livemerge.sh
set -eu
BUILD=${BUILD:-build}
VMM=$BUILD/bin/vmm-mini
T=${VHDTOOL:-$BUILD/vhdtool}
ROUNDS=${ROUNDS:-5}
SIZE=${BENCH_SIZE:-128M}
CHILD_MB=${CHILD_MB:-32}
MODE=(--user-mode)
[ "${VMM_USER_MODE:-1}" = 0 ] && MODE=()
PY3=$(command -v /usr/bin/python3 || command -v python3) ||
	{ echo "bench/livemerge.sh: python3 missing, skipped"; exit 0; }
[ -x "$VMM" ] && [ -x "$T" ] || { echo "bench/livemerge.sh: build first (make all)" >&2; exit 1; }
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/lmbench.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

# ctl JSON...: one answer line per request ("T=seconds " first: the
# monotonic time the answer came).  The socket exists already.
ctl() {
	"$PY3" - "$dir/c.sock" "$@" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
for q in sys.argv[2:]:
    f.write(q + "\n"); f.flush()
    a = f.readline().strip()
    print("T=%.6f %s" % (time.monotonic(), a))
PY
}
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
tm() { sed -n 's/^T=\([0-9.]*\) .*/\1/p'; }
. "$(dirname "$0")/lib.bash"

bytes=$(numfmt --from=iec "$SIZE")
WORKLOAD=${WORKLOAD:-records,flush_ms=100,progress_ms=0,slots=$((bytes / 4096)),batch=32,qd=8}
echo "== livemerge: $WORKLOAD on a $SIZE disk, child of ~$CHILD_MB MiB, $ROUNDS rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))"
: >"$dir/results"
for r in $(seq "$ROUNDS"); do
	rm -rf "$dir"/*.vhd "$dir/off" "$dir/c.sock"
	mkdir "$dir/off"
	"$T" create "$dir/a.vhd" "$SIZE" >/dev/null
	"$VMM" run "${MODE[@]}" --mem 64M --timeout 600 \
		--workload "$WORKLOAD" \
		--disk "$dir/a.vhd,lun=0" --control "$dir/c.sock" 2>"$dir/err" &
	pid=$!
	for _ in $(seq 200); do [ -S "$dir/c.sock" ] && break; sleep 0.05; done
	ctl '{"cmd":"snapshot","lun":0}' | grep -q '"ok":true' ||
		{ echo "bench/livemerge.sh: snapshot failed" >&2; cat "$dir/err" >&2; exit 1; }
	for _ in $(seq 1200); do
		[ "$(stat -c %s "$dir/a-snap1.vhd")" -ge $((CHILD_MB << 20)) ] && break
		kill -0 "$pid" || { cat "$dir/err" >&2; exit 1; }
		sleep 0.1
	done
	ctl '{"cmd":"pause"}' >/dev/null
	cp --sparse=always "$dir/a.vhd" "$dir/a-snap1.vhd" "$dir/off/"
	ctl '{"cmd":"resume"}' >/dev/null
	before=$(ctl '{"cmd":"stats"}')
	sleep 2
	out=$(ctl '{"cmd":"stats"}' '{"cmd":"merge","lun":0}' '{"cmd":"stats"}')
	kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
	m=$(echo "$out" | sed -n 2p)
	echo "$m" | grep -q '"ok":true' || { echo "bench/livemerge.sh: merge: $m" >&2; exit 1; }
	s0=$(echo "$before" | field srbs); t0=$(echo "$before" | tm)
	s1=$(echo "$out" | sed -n 1p | field srbs); t1=$(echo "$out" | sed -n 1p | tm)
	s2=$(echo "$out" | sed -n 3p | field srbs); t2=$(echo "$out" | sed -n 3p | tm)
	off0=$(date +%s%N)
	"$T" merge "$dir/off/a-snap1.vhd" >/dev/null
	off=$(( ($(date +%s%N) - off0) / 1000000 ))
	mib=$(echo "$m" | field bytes)
	echo "$m" | awk -v s0="$s0" -v s1="$s1" -v s2="$s2" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
		-v off="$off" -v mib="$mib" '{
		match($0, /"seconds":[0-9.]+/); sec = substr($0, RSTART + 10, RLENGTH - 10)
		match($0, /"held_us":[0-9]+/); held = substr($0, RSTART + 10, RLENGTH - 10)
		match($0, /"passes":[0-9]+/); pas = substr($0, RSTART + 9, RLENGTH - 9)
		before = (s1 - s0) / (t1 - t0); during = (s2 - s1) / (t2 - t1)
		print sec, held / 1000, off / 1000, before, during, during / before, mib / 1048576, pas
	}' >>"$dir/results"
	tail -n 1 "$dir/results" | awk -v r="$r" '{
		printf "round %d: live %.2f s, held %.1f ms; offline %.2f s; guest %.0f req/s before, %.0f during (%.2f); copied %.0f MiB in %d pass(es)\n",
			r, $1, $2, $3, $4, $5, $6, $7, $8 }'
done
col() { awk -v c="$1" '{print $c}' "$dir/results" | median; }
printf '| live merge (s) | I/O held (ms) | offline vhdtool merge (s) | guest req/s before | during | during/before | copied (MiB) | passes |\n'
printf '|---|---|---|---|---|---|---|---|\n'
printf '| %s | %s | %s | %.0f | %.0f | %.2f | %.0f | %s |\n' "$(col 1)" "$(col 2)" "$(col 3)" \
	"$(col 4)" "$(col 5)" "$(col 6)" "$(col 7)" "$(col 8)"
echo "(medians of $ROUNDS rounds; load after: $(cut -d' ' -f1-3 /proc/loadavg))"
