#!/bin/bash
# Crash safety of the backup repository: `backup create`, `prune` and `gc`
# are killed with SIGKILL at a random moment (TRIALS_CREATE + TRIALS_PRUNE
# + TRIALS_GC trials; the kill time is drawn from a measured uninterrupted
# run).  After every kill the whole repository must verify clean, no half
# backup may be listed, a random earlier backup must restore to the bytes
# it was taken from (and at the end of each phase, every backup).  After a
# killed create, the next create must reuse every chunk the killed one
# stored: the chunk files it adds are exactly its chunks-new.
set -u
T=${VHDTOOL:?}
TRIALS_CREATE=${TRIALS_CREATE:-10}
TRIALS_PRUNE=${TRIALS_PRUNE:-6}
TRIALS_GC=${TRIALS_GC:-6}
. "$(dirname "$0")/../lib.bash"
K=1024
M=$((1024 * K))
repo=$dir/repo
src=$dir/disk.raw
declare -A SUM      # backup ID -> sha256 of the disk it was taken from
killed=0

$T backup init --chunk-size 64K "$repo" || fail init
head -c $((8 * M)) /dev/urandom >"$src"

ids() { $T backup list "$repo" | awk 'NR > 1 { print $1 }'; }
nchunks() { find "$repo/chunks" -type f -name '[0-9a-f]*' | wc -l; }
chunks_new() { $T backup show "$repo" "$1" | sed -n 's/^chunks: .* read, \([0-9]*\) new)$/\1/p'; }
sum() { sha256sum "$src" | cut -c1-64; }
new_backup() {   # sets LAST (no subshell: SUM must persist)
	LAST=$($T backup create "$repo" "$src" 2>"$dir/err") || fail "create: $(cat "$dir/err")"
	SUM[$LAST]=$(sum)
}
# Change n random 64 KiB pieces of the disk (plain writes: tracking
# notices and the next backup reads everything; still deduplicated).
mutate() {
	for i in $(seq 1 "$1"); do
		head -c $((64 * K)) /dev/urandom |
			dd of="$src" bs=64K seek=$((RANDOM % 128)) conv=notrunc iflag=fullblock status=none
	done
}
restore_ok() {   # ID
	$T backup restore "$repo" "$1" "$dir/out.raw" 2>"$dir/err" || fail "restore $1: $(cat "$dir/err")"
	[ "$(sha256sum "$dir/out.raw" | cut -c1-64)" = "${SUM[$1]}" ] || fail "backup $1 restores wrong bytes"
	rm -f "$dir/out.raw"
}
check_repo() {   # WHAT
	local l n
	$T backup verify "$repo" >"$dir/verify" 2>&1 || fail "$1: repository does not verify: $(cat "$dir/verify")"
	l=$(ids)
	for id in $l; do
		[ -n "${SUM[$id]:-}" ] || fail "$1: unknown backup $id listed"
	done
	n=$(echo "$l" | wc -w)
	[ "$n" -gt 0 ] && restore_ok "$(echo "$l" | sed -n "$((RANDOM % n + 1))p")"
	true
}
restore_all() {
	for id in $(ids); do restore_ok "$id"; done
}
# run_killed MS CMD...: start CMD, SIGKILL it after a random part of MS;
# when it finished first (its status is not SIGKILL's), run it again with
# half the time, so every trial ends in a mid-run kill whatever the load.
run_killed() {
	local ms=$1 pid wait_ms st
	shift
	while :; do
		"$@" >/dev/null 2>&1 &
		pid=$!
		wait_ms=$(( (RANDOM * 32768 + RANDOM) % ms ))
		sleep "$((wait_ms / 1000)).$(printf '%03d' $((wait_ms % 1000)))"
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		st=$?
		[ "$st" = 137 ] && break
		ms=$((ms / 2 + 1))
	done
	killed=$((killed + 1))
}
timed_ms() {   # CMD... -> ms it took (output discarded)
	local s=$(date +%s%N)
	"$@" >/dev/null 2>&1 || fail "calibration: $*"
	echo $(( ($(date +%s%N) - s) / 1000000 + 1 ))
}

# ---- create ----
new_backup
mutate 40
ms=$(timed_ms $T backup create --no-track "$repo" "$src")
SUM[$(ids | tail -1)]=$(sum)
echo "create takes ${ms} ms"
for t in $(seq 1 "$TRIALS_CREATE"); do
	mutate 40
	sumnow=$(sum)
	run_killed "$ms" $T backup create --no-track "$repo" "$src"
	# A create killed after its manifest is a complete backup.
	for id in $(ids); do [ -n "${SUM[$id]:-}" ] || SUM[$id]=$sumnow; done
	check_repo "create trial $t"
	before=$(nchunks)
	new_backup
	added=$(( $(nchunks) - before ))
	[ "$added" = "$(chunks_new "$LAST")" ] ||
		fail "create trial $t: rerun added $added chunk files but reports $(chunks_new "$LAST") new"
done
restore_all
echo "create: $TRIALS_CREATE trials ($SECONDS s)"

# ---- prune ----
for t in $(seq 1 "$TRIALS_PRUNE"); do
	for i in 1 2 3 4 5 6; do mutate 2; new_backup; done
	[ "$t" = 1 ] && { ms=$(timed_ms $T backup prune --keep-last 30 "$repo"); echo "prune takes ${ms} ms"; }
	run_killed "$((ms * 2))" $T backup prune --keep-last 2 "$repo"
	check_repo "prune trial $t"
done
restore_all
echo "prune: $TRIALS_PRUNE trials ($SECONDS s)"

# ---- gc ----
for t in $(seq 1 "$TRIALS_GC"); do
	for i in 1 2 3; do mutate 30; new_backup; done
	$T backup prune --keep-last 2 "$repo" >/dev/null || fail "prune before gc"
	[ "$t" = 1 ] && { ms=$(timed_ms $T backup gc --grace 0 --dry-run "$repo"); echo "gc takes ${ms} ms (dry run)"; }
	run_killed "$((ms * 2))" $T backup gc --grace 0 "$repo"
	check_repo "gc trial $t"
done
restore_all
echo "gc: $TRIALS_GC trials ($SECONDS s)"

# Leftovers of the killed runs are cleaned up by gc; then still clean.
$T backup gc --grace 0 "$repo" >/dev/null || fail "final gc"
left=$(find "$repo" -name '.*.tmp.*' | wc -l)
[ "$left" = 0 ] || fail "$left temporary files after gc"
[ -z "$(ls "$repo/writers")" ] || fail "stale writer registrations after gc: $(ls "$repo/writers")"
check_repo final
total=$((TRIALS_CREATE + TRIALS_PRUNE + TRIALS_GC))
echo "$total trials, $killed killed mid-run"
[ "$killed" -eq "$total" ] || fail "only $killed of $total runs were killed mid-run"
