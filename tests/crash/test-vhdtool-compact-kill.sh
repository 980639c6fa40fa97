#!/bin/bash
# Crash safety of vhdtool compact: SIGKILL at a random moment, TRIALS
# times, on a dynamic image whose every other block is zeros (so blocks
# move into holes).  After each kill the image must be clean (check) and
# read exactly as before; compacting again must finish the job.  Every
# other trial runs with VHDTOOL_TEST_STEP_DELAY_US (a pause at each step:
# block scanned, block moved, each commit) so kills land between any two.
set -u
T=${VHDTOOL:?}
TRIALS=${TRIALS:-20}
. "$(dirname "$0")/../lib.bash"
requires qemu-img
# After a kill, check may find leaked space (exit 3: a block written whose
# BAT entry was not, which compact reclaims), as qemu-img check finds
# leaked clusters after a crash; never corruption (2) or a failure (1).
check_after_kill() { local out rc; out=$("$T" check "$1" 2>&1); rc=$?; [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "$out"; return 1; }; }
cd "$dir"

"$T" create --block-size 512K tpl.vhd 32M >/dev/null || fail "create"
head -c 32M /dev/urandom | "$T" write tpl.vhd 0 || fail "fill"
for i in $(seq 0 2 63); do
	head -c 512K /dev/zero | "$T" write tpl.vhd $((i * 524288)) || fail "zero block $i"
done
"$T" convert -O raw tpl.vhd expect.raw || fail "export"
DELAY=2000
timed() { local s; s=$(date +%s%N); "$@" >/dev/null || fail "uninterrupted run: $*"; echo $(( ($(date +%s%N) - s) / 1000000 + 1 )); }
# Copies are synced before each run so every run starts alike (no earlier
# writeback left for its syncs).
fresh() { cp tpl.vhd img.vhd && sync img.vhd; }
fresh
fast_ms=$(timed "$T" compact img.vhd)
final=$(stat -c %s img.vhd)
qemu-img compare -q -f vpc -F raw img.vhd expect.raw || fail "uninterrupted result"
fresh
slow_ms=$(VHDTOOL_TEST_STEP_DELAY_US=$DELAY timed "$T" compact img.vhd)
echo "one run takes ${fast_ms} ms (${slow_ms} ms with step delays); $(stat -c %s tpl.vhd) -> $final bytes"
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
	VHDTOOL_TEST_STEP_DELAY_US=$d "$T" compact img.vhd >/dev/null 2>&1 &
	pid=$!
	ms=$(( (RANDOM * 32768 + RANDOM) % (t > TRIALS ? run_ms / 2 + 1 : run_ms + run_ms / 4) ))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	[ $? = 137 ] && killed=$((killed + 1))
	out=$(check_after_kill img.vhd) || fail "trial $t: check after kill: $out"
	qemu-img compare -q -f vpc -F raw img.vhd expect.raw || fail "trial $t: content changed"
	"$T" compact img.vhd >/dev/null || fail "trial $t: compact after kill"
	[ "$(stat -c %s img.vhd)" = "$final" ] || fail "trial $t: second compact left $(stat -c %s img.vhd) bytes"
	qemu-img compare -q -f vpc -F raw img.vhd expect.raw || fail "trial $t: content after second compact"
done
echo "$t trials, $killed killed mid-run"
[ "$killed" -ge "$TRIALS" ] || fail "only $killed trials were killed mid-run"
