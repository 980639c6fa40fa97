#!/bin/bash
# Crash safety of vhdtool convert: SIGKILL at a random moment, TRIALS
# times, cycling through raw, fixed and dynamic output, with DST absent or
# holding an older image.  Every other trial runs with
# VHDTOOL_TEST_STEP_DELAY_US (a pause at each progress step) so kills also
# land between the steps of the copy, not only near its start or end.  After each kill DST must be absent (or the old
# file, byte for byte) or complete: equal to the source and clean.
set -u
T=${VHDTOOL:?}
TRIALS=${TRIALS:-20}
. "$(dirname "$0")/../lib.bash"
requires qemu-img
cd "$dir"

truncate -s 40M src.raw
head -c 24M /dev/urandom | dd of=src.raw conv=notrunc status=none
head -c 4M /dev/urandom | dd of=src.raw bs=1M seek=32 conv=notrunc status=none
"$T" create old.vhd 8M >/dev/null && printf 'old image' | "$T" write old.vhd 0 || fail "old image"
fmts=(raw fixed dynamic)
fmt_of() { echo "${fmts[$(($1 % 3))]}"; }
# complete FMT: DST equals the source
complete() {
	if [ "$1" = raw ]; then cmp -s dst src.raw
	else "$T" check dst >/dev/null && qemu-img compare -q -f vpc -F raw dst src.raw; fi
}

DELAY=3000
timed() { local s; s=$(date +%s%N); "$@" || fail "uninterrupted run: $*"; echo $(( ($(date +%s%N) - s) / 1000000 + 1 )); }
fast_ms=$(timed "$T" convert -O dynamic src.raw dst)
complete dynamic || fail "uninterrupted result"
rm -f dst
slow_ms=$(VHDTOOL_TEST_STEP_DELAY_US=$DELAY timed "$T" convert -O dynamic src.raw dst)
complete dynamic || fail "uninterrupted slow result"
echo "one run takes ${fast_ms} ms (${slow_ms} ms with step delays)"
killed=0
# Trials go on past TRIALS, with kills drawn from the first half of a run,
# until TRIALS of them were killed mid-run, so the count does not rest
# on how fast the machine is at the moment.
t=0
while [ "$killed" -lt "$TRIALS" ]; do
	t=$((t + 1))
	[ "$t" -le $((TRIALS * 5)) ] || fail "only $killed mid-run kills in $t trials"
	fmt=$(fmt_of "$t")
	rm -f dst .dst.tmp.*
	had_old=$(((t / 2) % 2))
	[ "$had_old" = 1 ] && cp old.vhd dst
	if [ $((t % 2)) = 0 ]; then d=$DELAY run_ms=$slow_ms; else d=0 run_ms=$fast_ms; fi
	VHDTOOL_TEST_STEP_DELAY_US=$d "$T" convert --force -O "$fmt" src.raw dst 2>/dev/null &
	pid=$!
	ms=$(( (RANDOM * 32768 + RANDOM) % (t > TRIALS ? run_ms / 2 + 1 : run_ms + run_ms / 4) ))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	[ $? = 137 ] && killed=$((killed + 1))
	if [ ! -e dst ]; then
		[ "$had_old" = 0 ] || fail "trial $t ($fmt): the old DST vanished"
	elif [ "$had_old" = 1 ] && cmp -s dst old.vhd; then
		:
	else
		complete "$fmt" || fail "trial $t ($fmt): DST is neither old nor complete"
	fi
	rm -f .dst.tmp.*     # what a killed convert may leave beside DST
done
echo "$t trials, $killed killed mid-run"
[ "$killed" -ge "$TRIALS" ] || fail "only $killed trials were killed mid-run"
