#!/bin/bash
# Crash safety of the VHD write path: a writer (tests/helpers/crash-writer)
# is killed with SIGKILL at a random moment, TRIALS times, alternating a
# dynamic image and a differencing child over a filled parent.  After each
# kill: `vhdtool check` must find the image clean, every write flushed
# before the kill must read back, later writes must be old-or-new per
# sector, and the image must take new writes.
set -u
T=${VHDTOOL:?}
W=${BUILD:-build}/tests/helpers/crash-writer
TRIALS=${TRIALS:-24}
. "$(dirname "$0")/../lib.bash"
# After a kill, check may find leaked space (exit 3: a block written whose
# BAT entry was not, which compact reclaims), as qemu-img check finds
# leaked clusters after a crash; never corruption (2) or a failure (1).
check_after_kill() { local out rc; out=$("$T" check "$1" 2>&1); rc=$?; [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "$out"; return 1; }; }

$T create --block-size 512K "$dir/base.vhd" 24M >/dev/null || fail "create base"
$W fill "$dir/base.vhd" 0 || fail "fill base"
# Calibrate: one uninterrupted run (verified in full) tells how long a run
# takes here, so kills land anywhere inside it.
$T snapshot "$dir/base.vhd" "$dir/img.vhd" || fail "snapshot"
start=$(date +%s%N)
$W write "$dir/img.vhd" 1 "$dir/journal" || fail "uninterrupted writer"
run_ms=$(( ($(date +%s%N) - start) / 1000000 + 1 ))
$W verify "$dir/img.vhd" 1 "$dir/journal" pattern || fail "uninterrupted verify"
$T check "$dir/img.vhd" >/dev/null || fail "uninterrupted check"
echo "one run takes ${run_ms} ms"
# Each trial is killed mid-run: when a writer finished before its kill
# (a slow moment on a loaded machine), the trial is redone with half the
# delay, so the count of mid-run kills does not depend on timing.
for t in $(seq 1 "$TRIALS"); do
	seed=$((t * 7919 + $$))
	ms=$(( (RANDOM * 32768 + RANDOM) % run_ms ))
	while :; do
		rm -f "$dir/img.vhd" "$dir/journal"
		if [ $((t % 2)) = 0 ]; then
			$T create --block-size 512K "$dir/img.vhd" 24M || fail "create"
			old=zero
		else
			$T snapshot "$dir/base.vhd" "$dir/img.vhd" || fail "snapshot"
			old=pattern
		fi
		$W write "$dir/img.vhd" "$seed" "$dir/journal" &
		pid=$!
		sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		grep -qx done "$dir/journal" 2>/dev/null || break
		ms=$((ms / 2))
	done
	out=$(check_after_kill "$dir/img.vhd") || fail "trial $t ($old): check after kill: $out"
	$W verify "$dir/img.vhd" "$seed" "$dir/journal" "$old" || fail "trial $t ($old): verify"
	printf 'after-crash' | $T write "$dir/img.vhd" 12345 || fail "trial $t: write after crash"
	[ "$($T read "$dir/img.vhd" 12345 11)" = after-crash ] || fail "trial $t: reread"
	check_after_kill "$dir/img.vhd" >/dev/null || fail "trial $t: check after new write"
done
$T check "$dir/base.vhd" >/dev/null || fail "base changed"
echo "$TRIALS trials, each killed before the writer finished"
