#!/bin/bash
# Damage in the repository is found and named exactly.  Five backups of
# one 8 MiB disk (1 MiB chunks): B1 the base, B2..B5 each with one chunk of
# its own.  Then, one after the other: a bit flipped in B2's own chunk, B3's
# chunk truncated, B4's chunk deleted, B5's index corrupted, a chunk all
# backups share damaged (then repaired from a copy of the disk), B1's
# manifest garbled.  After each step `verify` must name exactly the
# damaged backups (and the chunk, quarantined as HEX.bad), restoring a
# damaged backup must fail with a clear message and leave no file, and an
# undamaged one must still restore.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
M=$((1 << 20))
repo=$dir/repo
$T backup init --chunk-size 1M "$repo" || fail init

head -c $((8 * M)) /dev/urandom >"$dir/base.bin"
declare -a B
for i in 1 2 3 4 5; do
	cp "$dir/base.bin" "$dir/disk.raw"
	# B2..B5: chunk i-2 gets content of its own.
	[ $i -gt 1 ] && head -c $M /dev/urandom | dd of="$dir/disk.raw" bs=1M seek=$((i - 2)) iflag=fullblock conv=notrunc status=none
	cp "$dir/disk.raw" "$dir/ref$i"
	B[$i]=$($T backup create "$repo" "$dir/disk.raw" 2>/dev/null) || fail "create B$i"
done
flip() {   # FILE OFFSET: invert one bit
	python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0x10]))' "$1" "$2" || fail "flip $1"
}
chunk_of() {   # FILE OFFSET-MiB -> path of its chunk file
	local h
	h=$(dd if="$1" bs=1M skip="$2" count=1 status=none | sha256sum | cut -c1-64)
	echo "$repo/chunks/${h:0:2}/$h"
}

# damaged_set: the backup IDs verify names, sorted, space separated.
check() {   # STEP EXPECTED-BACKUP-NUMBERS...
	local step=$1 want="" got rc
	shift
	for n in "$@"; do want="$want ${B[$n]}"; done
	want=$(echo $want | tr ' ' '\n' | sort | tr '\n' ' ')
	$T backup verify "$repo" >"$dir/verify"
	rc=$?
	got=$(sed -n 's/^backup \([^:]*\):.*/\1/p' "$dir/verify" | sort | tr '\n' ' ')
	[ "$got" = "$want" ] || fail "$step: verify named [$got], want [$want]: $(cat "$dir/verify")"
	[ $rc = 1 ] || fail "$step: verify exit $rc, want 1"
	grep -q '^damaged: ' "$dir/verify" || fail "$step: no damaged summary"
	# B1 alone is fine until its own manifest breaks.
	if [ "$step" != manifest ]; then
		$T backup verify "$repo" "${B[1]}" >/dev/null || fail "$step: verify B1 alone failed"
		$T backup restore "$repo" "${B[1]}" "$dir/ok.raw" || fail "$step: restore B1"
		cmp "$dir/ok.raw" "$dir/ref1" || fail "$step: B1 restores wrong"
		rm -f "$dir/ok.raw"
	fi
	echo "$step: verify names $(echo "$@" | sed 's/[0-9]/B&/g')"
}
restore_fails() {   # STEP N MESSAGE-PART
	$T backup restore "$repo" "${B[$2]}" "$dir/bad.raw" 2>"$dir/err" && fail "$1: restore of B$2 succeeded"
	grep -q "$3" "$dir/err" || fail "$1: restore message lacks '$3': $(cat "$dir/err")"
	[ "$(wc -l <"$dir/err")" = 1 ] || fail "$1: restore message is not one line"
	[ ! -e "$dir/bad.raw" ] || fail "$1: a failed restore left bad.raw"
	ls -A "$dir" | grep -q '^\.' && fail "$1: a failed restore left a temporary file"
	true
}

$T backup verify "$repo" >"$dir/verify" || fail "clean repository does not verify: $(cat "$dir/verify")"

# 1. Bit flip in B2's own chunk.
c=$(chunk_of "$dir/ref2" 0)
flip "$c" 5000
check bitflip 2
grep -q "^chunk $(basename "$c"): payload checksum mismatch" "$dir/verify" || fail "bitflip: chunk not named: $(cat "$dir/verify")"
grep -q "^chunk $(basename "$c"): .*; quarantined as $(basename "$c").bad" "$dir/verify" || fail "bitflip: not quarantined"
[ -e "$c.bad" ] && [ ! -e "$c" ] || fail "bitflip: $c not renamed .bad"
restore_fails bitflip 2 "chunk 0 (disk offset 0) $(basename "$c"): damaged, quarantined as $(basename "$c").bad"

# 2. B3's chunk truncated.
c=$(chunk_of "$dir/ref3" 1)
truncate -s 1000 "$c"
check truncate 2 3
grep -q "^chunk $(basename "$c"): file is 1000 bytes" "$dir/verify" || fail "truncate: chunk not named"
restore_fails truncate 3 "chunk 1 (disk offset 1048576).*quarantined"

# 3. B4's chunk deleted.
c=$(chunk_of "$dir/ref4" 2)
rm "$c"
check delete 2 3 4
grep -q "^chunk $(basename "$c"): missing from the repository" "$dir/verify" || fail "delete: chunk not named"
restore_fails delete 4 "missing from the repository"

# 4. B5's index corrupted (one byte of a digest).
flip "$repo/backups/${B[5]}.idx" 100
check index 2 3 4 5
grep -q "^backup ${B[5]}: index checksum mismatch" "$dir/verify" || fail "index: not named"
restore_fails index 5 "index checksum mismatch"

# 5. A chunk all share (the last one) flipped: every backup is damaged.
c=$(chunk_of "$dir/ref1" 7)
flip "$c" 30
$T backup verify "$repo" >"$dir/verify" && fail "shared: verify passed"
got=$(grep -c '^backup ' "$dir/verify")
[ "$got" = 5 ] || fail "shared: $got backups named, want 5"
restore_fails shared 1 "chunk 7 .*quarantined"
# repair from a copy of B1's disk: the shared chunk comes back, the others
# (their data is in no source given) stay lost.
$T backup repair "$repo" "$dir/ref1" >"$dir/repair" && fail "repair said every backup is whole"
grep -q "^chunk $(basename "$c"): stored again from .*ref1 at offset $((7 * M))" "$dir/repair" || fail "repair: $(cat "$dir/repair")"
grep -q "1 backups repaired, 4 stay damaged" "$dir/repair" || fail "repair summary: $(cat "$dir/repair")"
check repaired 2 3 4 5

# 6. B1's manifest garbled: named, listed as damaged, restore says why.
printf '{"format": 1, "id": ' >"$repo/backups/${B[1]}.json"
check manifest 1 2 3 4 5
grep -q "^backup ${B[1]}: manifest damaged" "$dir/verify" || fail "manifest: not named"
$T backup list --json "$repo" >"$dir/list" 2>/dev/null && fail "list succeeded with a damaged manifest"
[ "$(grep -c '"id"' "$dir/list")" = 5 ] || fail "list omits a damaged manifest"
[ "$(grep -c '"damaged"' "$dir/list")" = 1 ] || fail "list does not mark the damaged manifest"
restore_fails manifest 1 "manifest damaged"

# gc refuses while an index is unreadable, and works once it is forgotten.
truncate -s 10 "$repo/backups/${B[5]}.idx"
$T backup gc --grace 0 "$repo" 2>"$dir/err" && fail "gc ran with an unreadable index"
grep -q "backup forget" "$dir/err" || fail "gc message: $(cat "$dir/err")"
$T backup forget "$repo" "${B[5]}" || fail forget
$T backup gc --grace 0 "$repo" >/dev/null || fail "gc after forget"

# A damaged repository description is one clear message.
echo 'garbage' >"$repo/repo.json"
$T backup list "$repo" 2>"$dir/err" && fail "list of a damaged repo.json succeeded"
grep -q "repo.json: damaged" "$dir/err" || fail "repo.json message: $(cat "$dir/err")"
echo ok
