#!/bin/bash
# Crash safety of vhdtool merge: SIGKILL at a random moment, TRIALS times,
# merging a 3-level chain into its base (--into).  After each kill every
# file left must be clean, the child (if its chain is still there) must
# read exactly as before, the base must be valid, and running the merge
# again must finish with the base reading what the child showed.  (Killed
# between the removals, the child is left without its parent: then the
# base must already be complete.)  Every other trial runs
# with VHDTOOL_TEST_STEP_DELAY_US (a pause after each chunk written) so
# kills land between any two chunks, and in the removal of the files.
set -u
T=${VHDTOOL:?}
TRIALS=${TRIALS:-20}
. "$(dirname "$0")/../lib.bash"
requires qemu-img
# After a kill, check may find leaked space (exit 3: a block written whose
# BAT entry was not, which compact reclaims), as qemu-img check finds
# leaked clusters after a crash; never corruption (2) or a failure (1).
check_after_kill() { local out rc; out=$("$T" check "$1" 2>&1); rc=$?; [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "$out"; return 1; }; }
mkdir "$dir/tpl" "$dir/t"
# Built in t/ (where the trials run) so that both parent locators, the
# relative and the absolute one, name the working copies; kept in tpl/.
cd "$dir/t"
"$T" create --block-size 512K base.vhd 24M >/dev/null || fail "create"
head -c 24M /dev/urandom | "$T" write base.vhd 0 || fail "fill base"
"$T" snapshot base.vhd mid.vhd || fail "snapshot"
head -c 6M /dev/urandom | "$T" write mid.vhd 2M || fail "write mid"
head -c 1M /dev/zero | "$T" write mid.vhd 20M || fail "zeros in mid"
"$T" snapshot mid.vhd top.vhd || fail "snapshot"
head -c 6M /dev/urandom | "$T" write top.vhd 5M || fail "write top"
head -c 3000 /dev/urandom | "$T" write top.vhd 12345 || fail "write top"
"$T" convert -O raw top.vhd ../expect.raw || fail "export"
mv ./*.vhd ../tpl/
# Copies are synced so every run starts alike (no writeback left over).
fresh() { rm -f ./*.vhd; cp ../tpl/*.vhd . && sync ./*.vhd; }
DELAY=5000
timed() { local s; s=$(date +%s%N); "$@" >/dev/null || fail "uninterrupted run: $*"; echo $(( ($(date +%s%N) - s) / 1000000 + 1 )); }
fresh
fast_ms=$(timed "$T" merge --into base.vhd top.vhd)
qemu-img compare -q -f vpc -F raw base.vhd ../expect.raw || fail "uninterrupted result"
fresh
slow_ms=$(VHDTOOL_TEST_STEP_DELAY_US=$DELAY timed "$T" merge --into base.vhd top.vhd)
echo "one run takes ${fast_ms} ms (${slow_ms} ms with step delays)"
killed=0
# Trials go on past TRIALS, with kills drawn from the first half of a run,
# until TRIALS of them were killed mid-run, so the count does not rest
# on how fast the machine is at the moment.
t=0
while [ "$killed" -lt "$TRIALS" ]; do
	t=$((t + 1))
	[ "$t" -le $((TRIALS * 5)) ] || fail "only $killed mid-run kills in $t trials"
	fresh
	if [ $((t % 2)) = 0 ]; then d=$DELAY run_ms=$slow_ms; else d=0 run_ms=$fast_ms; fi
	VHDTOOL_TEST_STEP_DELAY_US=$d "$T" merge --into base.vhd top.vhd >/dev/null 2>&1 &
	pid=$!
	ms=$(( (RANDOM * 32768 + RANDOM) % (t > TRIALS ? run_ms / 2 + 1 : run_ms + run_ms / 4) ))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	[ -n "${CRASH_DEBUG:-}" ] && echo "trial $t: kill at $ms ms of $run_ms"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	[ $? = 137 ] && killed=$((killed + 1))
	out=$(check_after_kill base.vhd) || fail "trial $t: base: $out"
	if [ -e top.vhd ] && [ ! -e mid.vhd ]; then
		# Killed between the removals (mid first, top last): the copy
		# was complete; top is left without its parent, unusable.
		"$T" check top.vhd >/dev/null 2>&1 && fail "trial $t: orphan top opens"
		rm top.vhd
	elif [ -e top.vhd ]; then
		out=$(check_after_kill top.vhd) || fail "trial $t: top: $out"
		"$T" convert -O raw top.vhd now.raw || fail "trial $t: read top"
		cmp -s now.raw ../expect.raw || fail "trial $t: the chain reads differently after the kill"
		rm -f now.raw
		"$T" merge --into base.vhd top.vhd >/dev/null || fail "trial $t: merge again"
	fi
	qemu-img compare -q -f vpc -F raw base.vhd ../expect.raw || fail "trial $t: base after the merge"
done
echo "$t trials, $killed killed mid-run"
[ "$killed" -ge "$TRIALS" ] || fail "only $killed trials were killed mid-run"
