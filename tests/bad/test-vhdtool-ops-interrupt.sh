#!/bin/bash
# Ctrl-C (SIGINT) and SIGTERM in the middle of convert, compact and merge:
# each stops at its next step, says what state things are in, exits 1, and
# leaves things whole: no DST and no temporary file after convert, an
# intact compacted-or-not image, a chain that reads as before and a merge
# that completes when run again.  VHDTOOL_TEST_STEP_DELAY_US slows each
# step so the signal surely lands mid-run.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires qemu-img
cd "$dir"
export VHDTOOL_TEST_STEP_DELAY_US=20000
# interrupt SIGNAL CMD...: start CMD, signal it from 0.15 s on, expect exit 1.
# The signal is sent again every 0.1 s until CMD exits: a background job of
# a script starts with SIGINT ignored until vhdtool installs its handler,
# and a slow start (a sanitizer build on a loaded machine takes over a
# second) would lose a single early signal.
interrupt() {
	local sig=$1 i
	shift
	"$@" >out 2>err &
	local pid=$!
	sleep 0.15
	for i in $(seq 300); do
		kill -"$sig" "$pid" 2>/dev/null || break
		sleep 0.1
	done
	wait "$pid"
	local rc=$?
	[ "$rc" = 1 ] || fail "$* after SIG$sig exited $rc ($(cat err))"
	grep -q interrupted err || fail "$*: message: $(cat err)"
}

head -c 24M /dev/urandom > src.raw
interrupt INT "$T" convert -O dynamic src.raw out.vhd
grep -q 'nothing was written under this name' err || fail "convert message: $(cat err)"
[ -e out.vhd ] && fail "convert left DST"
ls -A | grep -q tmp && fail "convert left a temporary file"
interrupt TERM "$T" convert -O raw src.raw out.raw
[ -e out.raw ] && fail "convert left DST"

"$T" create --block-size 512K img.vhd 24M >/dev/null || fail "create"
"$T" write img.vhd 0 < src.raw || fail "fill"
head -c 12M /dev/zero | "$T" write img.vhd 0 || fail "zeros"
"$T" convert -O raw img.vhd img.raw || fail "export"
interrupt INT "$T" compact img.vhd
grep -q 'intact and reads as before' err || fail "compact message: $(cat err)"
"$T" check img.vhd >/dev/null || fail "check after interrupted compact"
qemu-img compare -q -f vpc -F raw img.vhd img.raw || fail "compact changed the content"

"$T" snapshot img.vhd child.vhd || fail "snapshot"
"$T" write child.vhd 0 < src.raw || fail "write child"
"$T" convert -O raw child.vhd child.raw || fail "export child"
interrupt INT "$T" merge child.vhd
grep -q 'run the merge again' err || fail "merge message: $(cat err)"
[ -e child.vhd ] || fail "interrupted merge removed the child"
"$T" convert --force -O raw child.vhd now.raw && cmp now.raw child.raw || fail "chain reads differently"
unset VHDTOOL_TEST_STEP_DELAY_US
"$T" merge child.vhd >/dev/null || fail "merge again"
qemu-img compare -q -f vpc -F raw img.vhd child.raw || fail "merged parent differs"
echo "interrupted operations stop cleanly"
