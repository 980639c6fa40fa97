#!/bin/bash
# check --repair of a file cut short says what it could not recover and
# keeps what survived: a cut inside the last data sector reports the lost
# bytes (it used to zero-fill them and report "no problems"); a cut deep
# into a block keeps the block's surviving part (it used to clear the whole
# block); a cut inside a bitmap reports that block lost.  The repair exits
# 1 (problems remain: lost data), and the image is clean afterwards.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
cd "$dir"
M=1048576

head -c 4M /dev/urandom > data
"$T" create img.vhd 8M >/dev/null || fail create
"$T" write img.vhd 0 < data || fail write
cp img.vhd orig.vhd
B=$(( $(stat -c %s orig.vhd) - 512 ))   # end of the last block (block 1, disk 2M-4M)

# cut KEEP: truncate at B - KEEP... repair; the first LOSTFROM bytes of the
# disk must read as before, the rest of the 4 MiB as zeros.
cut_and_repair() {   # CUT-OFFSET LOST-FROM
	cp orig.vhd img.vhd
	truncate -s "$1" img.vhd
	"$T" check --repair img.vhd >out 2>&1; rc=$?
	[ "$rc" = 2 ] || fail "repair of a file cut at $1 exited $rc: $(cat out)"
	grep -q "data lost" out || fail "cut at $1: loss not reported: $(cat out)"
	grep -q "no problems" out && fail "cut at $1: 'no problems' after a loss: $(cat out)"
	"$T" check img.vhd >/dev/null || fail "cut at $1: not clean after the repair: $("$T" check img.vhd)"
	{ head -c "$2" data; head -c $((4 * M - $2)) /dev/zero; } > want
	"$T" read img.vhd 0 4M | cmp - want || fail "cut at $1: survivors not kept or lost part not zeros"
}

# Inside the last sector of the data: 100 bytes lost.
cut_and_repair $((B - 100)) $((4 * M - 100))
grep -q "disk bytes $((4 * M - 100))-$((4 * M - 1))" out || fail "lost range not named: $(cat out)"
# Deep into the block: the first MiB of block 1 survives (plus 7 bytes short).
cut_and_repair $((B - M - 7)) $((3 * M - 7))
# Inside block 1's bitmap: the whole block is lost, block 0 kept.
cut_and_repair $((B - 2 * M - 100)) $((2 * M))
grep -q "block 1 (disk bytes $((2 * M))-$((4 * M - 1)))" out || fail "lost block not named: $(cat out)"

# A file that only lost its footer (cut exactly at the end of the blocks)
# loses nothing: repaired, clean.
cp orig.vhd img.vhd
truncate -s "$B" img.vhd
"$T" check --repair img.vhd >out 2>&1 || fail "footer-only loss: $(cat out)"
grep -q "data lost" out && fail "footer-only loss reported data lost: $(cat out)"
"$T" read img.vhd 0 4M | cmp -s - data || fail "footer-only loss changed data"
# A BAT entry pointing past the end of an intact file: clearing it loses
# the block, so the repair says so and exits 2 (it used to say "repaired"
# and "no problems").
PATCH=$OLDPWD/${BUILD:-build}/tests/helpers/vhdpatch
if [ -x "$PATCH" ]; then
	cp orig.vhd img.vhd
	"$PATCH" img.vhd bat.1=$(( (B - 1024) / 512 )) || fail "patch"
	"$T" check --repair img.vhd >out 2>&1; rc=$?
	[ "$rc" = 2 ] || fail "repair of a BAT entry past the end exited $rc: $(cat out)"
	grep -q "data lost: BAT entry 1: .*disk bytes $((2 * M))-$((4 * M - 1))" out || fail "loss not named: $(cat out)"
	grep -q "cleared BAT entry 1" out || fail "repair not reported: $(cat out)"
	# Block 1's old place is now used by nothing: leaked space (exit 3).
	"$T" check img.vhd >out 2>&1; rc=$?
	[ "$rc" = 3 ] || fail "after clearing: exit $rc, want 3 (leaked only): $(cat out)"
fi
echo "repairs name what was lost and keep what survived"
