#!/bin/bash
# A stored chunk whose header is intact but whose payload rotted must not
# poison later backups:
#  1. an incremental backup that reads the same data again (a tracked write
#     puts chunk 1's content at chunk 6) stores it again and restores;
#  2. a --full backup stores a rotten chunk again, including a compressed
#     chunk whose payload checksum was forged to match (only inflating it
#     shows the damage);
#  3. verify names and quarantines a rotten chunk (HEX.bad), restore says
#     so, `backup repair REPO SOURCE` stores it again from the disk and
#     verify is clean; a chunk no source holds any more is reported lost;
#  4. after a quarantine, the next (unchanged, incremental) backup reads
#     that chunk from the source again;
#  5. `backup list` shows a backup whose manifest is damaged and fails.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires python3
M=$((1 << 20))
repo=$dir/repo
disk=$dir/disk.raw
$T backup init --chunk-size 1M "$repo" || fail init

# Chunks 0-3 random (stored raw), 4-7 text (stored compressed).
head -c $((4 * M)) /dev/urandom >"$disk"
python3 -c 'import sys
sys.stdout.buffer.write((b"compressible line of the disk\n" * 200000)[:4 << 20])' >>"$disk"
cp "$disk" "$dir/ref1"

chunk_of() {   # FILE CHUNK-NUMBER -> path of its chunk file
	local h
	h=$(dd if="$1" bs=1M skip="$2" count=1 status=none | sha256sum | cut -c1-64)
	echo "$repo/chunks/${h:0:2}/$h"
}
# rot FILE [forge]: flip a payload byte, header intact; with forge also
# recompute the payload and header CRCs so that only the content is wrong.
rot() {
	python3 - "$1" "${2:-}" <<'EOF' || fail "rot $1"
import sys, zlib, struct
p, forge = sys.argv[1], sys.argv[2] == "forge"
b = bytearray(open(p, "rb").read())
assert b[:4] == b"VBKC"
i = 24 + (len(b) - 24) // 2
b[i] ^= 0x55
if forge:
    struct.pack_into("<I", b, 16, zlib.crc32(bytes(b[24:])))
    struct.pack_into("<I", b, 20, zlib.crc32(bytes(b[:20])))
open(p, "wb").write(b)
EOF
}
jget() {
	$T backup show --json "$repo" "$1" |
		python3 -c 'import json,sys; j=json.load(sys.stdin); [print(j[k]) for k in sys.argv[1:]]' "${@:2}"
}
backup() {   # [OPTIONS] -> ID
	$T backup create "$@" "$repo" "$disk" 2>"$dir/err" || fail "create $*: $(cat "$dir/err")"
}
restores() {   # ID REFERENCE STEP
	$T backup restore "$repo" "$1" "$dir/out.raw" 2>"$dir/err" ||
		fail "$3: restore of $1 failed: $(cat "$dir/err")"
	cmp -s "$dir/out.raw" "$2" || fail "$3: restore of $1 differs from the source"
	rm -f "$dir/out.raw"
}

b1=$(backup)
[ "$(jget "$b1" kind)" = full ] || fail "first backup not full"

# ---- 1. incremental that reads the rotten chunk's data ----
c1=$(chunk_of "$disk" 1)
rot "$c1"
dd if="$disk" bs=1M skip=1 count=1 status=none | $T write "$disk" 6M || fail write
b2=$(backup)
[ "$(jget "$b2" kind)" = incremental ] || fail "1: not incremental: $(jget "$b2" reason)"
grep -q "1 damaged chunk files of the repository were stored again" "$dir/err" ||
	fail "1: create did not say it replaced a damaged chunk: $(cat "$dir/err")"
restores "$b2" "$disk" "1 (incremental)"
[ "$(jget "$b2" chunks-replaced)" = 1 ] || fail "1: chunks-replaced $(jget "$b2" chunks-replaced), want 1"
echo "1: incremental stored the rotten chunk again"

# ---- 2. --full: a rotten raw chunk, and a compressed one with forged CRCs ----
rot "$(chunk_of "$disk" 2)"
rot "$(chunk_of "$disk" 5)" forge
b3=$(backup --full)
restores "$b3" "$disk" "2 (--full)"
[ "$(jget "$b3" chunks-replaced)" = 2 ] || fail "2: chunks-replaced $(jget "$b3" chunks-replaced), want 2"
restores "$b1" "$dir/ref1" "2 (the first backup, healed by sharing the chunks)"
$T backup verify "$repo" >"$dir/v" || fail "2: verify after --full: $(cat "$dir/v")"
echo "2: --full stored both rotten chunks again"

# ---- 3. verify quarantines, repair stores again from the disk ----
c3=$(chunk_of "$disk" 3)
rot "$c3"
$T backup verify "$repo" >"$dir/v" && fail "3: verify passed with a rotten chunk"
grep -q "^chunk $(basename "$c3"): payload checksum mismatch; quarantined as $(basename "$c3").bad" "$dir/v" ||
	fail "3: verify did not name and quarantine the chunk: $(cat "$dir/v")"
[ -e "$c3.bad" ] && [ ! -e "$c3" ] || fail "3: $c3 not moved to .bad"
grep -q "1 quarantined" "$dir/v" || fail "3: summary: $(tail -1 "$dir/v")"
$T backup restore "$repo" "$b1" "$dir/out.raw" 2>"$dir/err" && fail "3: restore with a quarantined chunk succeeded"
grep -q "quarantined as $(basename "$c3").bad" "$dir/err" || fail "3: restore message: $(cat "$dir/err")"
$T backup repair "$repo" "$disk" >"$dir/r" || fail "3: repair: $(cat "$dir/r")"
grep -q "^chunk $(basename "$c3"): stored again from .*disk.raw at offset $((3 * M))" "$dir/r" ||
	fail "3: repair did not store the chunk: $(cat "$dir/r")"
grep -q "^backup $b1: repaired" "$dir/r" || fail "3: repair did not say $b1 is repaired: $(cat "$dir/r")"
grep -q "3 backups repaired, 0 stay damaged" "$dir/r" || fail "3: repair summary: $(tail -1 "$dir/r")"
$T backup verify "$repo" >"$dir/v" || fail "3: verify after repair: $(cat "$dir/v")"
restores "$b1" "$dir/ref1" "3 (after repair)"
# A chunk no source holds: B1's chunk 6 (the disk has other data there now).
c6=$(chunk_of "$dir/ref1" 6)
rm "$c6"
$T backup repair "$repo" "$disk" >"$dir/r" && fail "3: repair of a lost chunk succeeded"
grep -q "^backup $b1: stays damaged: 1 of 8 chunks found in no source (first: chunk 6 at disk offset $((6 * M)))" "$dir/r" ||
	fail "3: repair did not say B1 stays damaged: $(cat "$dir/r")"
grep -q "0 backups repaired, 1 stay damaged" "$dir/r" || fail "3: summary: $(tail -1 "$dir/r")"
# A second source that still holds it (a copy of the old disk) repairs it.
$T backup repair "$repo" "$disk" "$dir/ref1" >"$dir/r" || fail "3: repair from two sources: $(cat "$dir/r")"
grep -q "^backup $b1: repaired" "$dir/r" || fail "3: second source: $(cat "$dir/r")"
restores "$b1" "$dir/ref1" "3 (repaired from a second source)"
echo "3: verify quarantined, repair stored again, a lost chunk was named"

# ---- 4. the next backup stores a quarantined chunk again ----
c0=$(chunk_of "$disk" 0)
rot "$c0"
$T backup verify "$repo" >/dev/null && fail "4: verify passed"
[ -e "$c0.bad" ] || fail "4: not quarantined"
b4=$(backup)
[ "$(jget "$b4" kind)" = incremental ] || fail "4: not incremental: $(jget "$b4" reason)"
restores "$b4" "$disk" "4 (incremental after quarantine)"
$T backup verify "$repo" >"$dir/v" || fail "4: verify: $(cat "$dir/v")"
$T backup gc --grace 0 "$repo" >/dev/null || fail "4: gc"
[ ! -e "$c0.bad" ] || fail "4: gc kept a .bad file whose chunk is back"
echo "4: an incremental stored the quarantined chunk again; gc removed the .bad file"

# ---- 5. list shows a damaged manifest ----
printf '{"format": 1, "id": ' >"$repo/backups/$b2.json"
$T backup list "$repo" >"$dir/l" 2>"$dir/err" && fail "5: list succeeded with a damaged manifest"
grep -q "^$b2 .*DAMAGED: manifest damaged" "$dir/l" || fail "5: list does not show $b2: $(cat "$dir/l")"
grep -q "backup $b2: manifest damaged" "$dir/err" || fail "5: list message: $(cat "$dir/err")"
[ "$(grep -c '^20' "$dir/l")" = 4 ] || fail "5: list shows $(grep -c '^20' "$dir/l") backups, want 4"
$T backup list --json "$repo" >"$dir/l" 2>/dev/null && fail "5: list --json succeeded"
python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
d = [b for b in v if "damaged" in b]
assert len(v) == 4 and len(d) == 1 and d[0]["id"] == sys.argv[2], v' "$dir/l" "$b2" ||
	fail "5: list --json: $(cat "$dir/l")"
echo "5: list shows the damaged manifest"
echo ok
