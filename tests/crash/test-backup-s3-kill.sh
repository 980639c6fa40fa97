#!/bin/bash
# Crash safety of an S3 backup repository (radosgw, tests/ceph-cluster.bash):
# `backup create`, `prune` and `gc` killed with SIGKILL at a random moment
# (TRIALS_CREATE + TRIALS_PRUNE + TRIALS_GC, 4 + 2 + 2 by default).  After
# every kill: `list` shows only complete backups (each one this test made),
# each of them restores to the bytes it was taken from, and verify is clean.
# A killed prune or gc leaves its lock object: the next one is refused
# while it is fresh ("locked by"); the test then removes it as an operator
# would once the holder is known dead.
. "$(dirname "$0")/../lib.bash"
. "$(dirname "$0")/../ceph-cluster.bash"
T=${VHDTOOL:?}
B=${BUILD:-build}
P=$B/tests/tools/s3probe
TRIALS_CREATE=${TRIALS_CREATE:-4}
TRIALS_PRUNE=${TRIALS_PRUNE:-2}
TRIALS_GC=${TRIALS_GC:-2}
[ -x "$P" ] || fail "$P not built"
TO() { timeout -k 5 300 "$@"; }
K=1024
M=$((1024 * K))
R=s3://crash-bucket/r
src=$dir/disk.raw
declare -A SUM
PENDING=

ceph_cluster_start "$dir/ceph"
ceph_rgw_start

TO $T backup init --chunk-size 256K "$R" || fail init
head -c $((6 * M)) /dev/urandom >"$src"
sum() { sha256sum "$src" | cut -c1-64; }
ids() { TO $T backup list "$R" | awk 'NR > 1 { print $1 }'; }
new_backup() {
	LAST=$(TO $T backup create "$R" "$src" 2>"$dir/err") || fail "create: $(cat "$dir/err")"
	SUM[$LAST]=$(sum)
}
mutate() {
	for _ in $(seq 1 "$1"); do
		head -c $((64 * K)) /dev/urandom |
			dd of="$src" bs=64K seek=$((RANDOM % 96)) conv=notrunc iflag=fullblock status=none
	done
}
check_repo() {   # WHAT
	local l
	l=$(ids) || fail "$1: list failed"
	for id in $l; do
		# A killed create may have finished first: complete, of the
		# source as it was then (PENDING).
		[ -z "${SUM[$id]:-}" ] && [ -n "$PENDING" ] && { SUM[$id]=$PENDING; PENDING=; }
		[ -n "${SUM[$id]:-}" ] || fail "$1: a backup this test did not complete is listed: $id"
		TO $T backup restore "$R" "$id" "$dir/out.raw" 2>"$dir/err" || fail "$1: restore $id: $(cat "$dir/err")"
		[ "$(sha256sum "$dir/out.raw" | cut -c1-64)" = "${SUM[$id]}" ] || fail "$1: backup $id restores other bytes"
		rm -f "$dir/out.raw"
	done
	TO $T backup verify "$R" >"$dir/v" 2>&1 || fail "$1: verify: $(cat "$dir/v")"
}
# kill_during SECONDS_MAX CMD...: start CMD, SIGKILL it after a random
# part of SECONDS_MAX (if it is still running).  CMD is the process
# itself (no timeout wrapper, whose kill would leave it running); the kill
# bounds it.
kill_during() {
	local max=$1 pid ms
	shift
	"$@" >/dev/null 2>&1 &
	pid=$!
	ms=$((RANDOM % (max * 1000)))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	true
}
unlock_dead() {   # the lock of a killed prune/gc: refused while fresh, then removed
	if TO $P head "s3://crash-bucket/r/lock" >/dev/null 2>&1; then
		TO $T backup gc "$R" >/dev/null 2>"$dir/err" && fail "gc ran beside a fresh lock object"
		grep -q 'locked by' "$dir/err" || fail "gc beside a lock: $(cat "$dir/err")"
		TO $P delete "s3://crash-bucket/r/lock" || fail "remove the dead lock"
	fi
}

new_backup
for t in $(seq 1 "$TRIALS_CREATE"); do
	mutate 4
	# 24 chunks at 0.2 s each with -p: killed somewhere within (or done)
	kill_during 3 env VHDTOOL_TEST_STEP_DELAY_US=200000 $T backup create -p "$R" "$src"
	PENDING=$(sum)
	check_repo "create trial $t"
	PENDING=
	new_backup
done
for t in $(seq 1 "$TRIALS_PRUNE"); do
	mutate 2
	new_backup
	kill_during 1 $T backup prune --keep-last 2 "$R"
	check_repo "prune trial $t"
	unlock_dead
done
for t in $(seq 1 "$TRIALS_GC"); do
	mutate 2
	new_backup
	TO $T backup prune --keep-last 1 "$R" >/dev/null 2>"$dir/err" || fail "prune: $(cat "$dir/err")"
	kill_during 1 $T backup gc --grace 0 "$R"
	check_repo "gc trial $t"
	unlock_dead
done
TO $T backup gc --grace 0 "$R" >/dev/null 2>"$dir/err" || fail "final gc: $(cat "$dir/err")"
check_repo "after the final gc"
echo ok
