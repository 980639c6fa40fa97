#!/bin/bash
# prune and gc:
#  - six backups of one disk (each changes one chunk) and two of another;
#    prune --dry-run removes nothing; prune --keep-last 2 keeps the two
#    newest of each source; prune without rules is refused;
#  - gc keeps young garbage under the default grace, and with --grace 0
#    leaves exactly the chunks the remaining indexes reference (read from
#    the documented index format here, independently of vhdtool);
#  - gc running in a loop while backups run that reuse garbage chunks
#    never removes a chunk a new backup needs (verify + restore after).
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires python3
gcpid=
at_exit 'touch "$dir/stop"; [ -n "$gcpid" ] && wait "$gcpid"'
M=$((1 << 20))
repo=$dir/repo
$T backup init --chunk-size 1M "$repo" || fail init

ids() { $T backup list --json "$repo" | python3 -c 'import json,sys; [print(b["id"]) for b in json.load(sys.stdin)]'; }
nchunks() { find "$repo/chunks" -type f -name '[0-9a-f]*' | wc -l; }
# Digests the indexes of existing manifests reference (docs/backup-format.md).
referenced() {
	python3 - "$repo" <<'EOF'
import os, sys
repo = sys.argv[1]
seen = set()
for name in os.listdir(repo + "/backups"):
    if not name.endswith(".json") or name.startswith("."):
        continue
    data = open(repo + "/backups/" + name[:-5] + ".idx", "rb").read()
    assert data[:4] == b"VBKI"
    n = int.from_bytes(data[24:32], "little")
    for i in range(n):
        d = data[32 + 32 * i: 64 + 32 * i]
        if d != bytes(32):
            seen.add(d.hex())
print(len(seen))
EOF
}

head -c $((16 * M)) /dev/urandom >"$dir/a.raw"
head -c $((8 * M)) /dev/urandom >"$dir/b.raw"
for i in 1 2 3 4 5 6; do
	[ $i -gt 1 ] && head -c 4096 /dev/urandom | $T write "$dir/a.raw" $(((i - 2) * M))
	$T backup create "$repo" "$dir/a.raw" >/dev/null 2>&1 || fail "create a$i"
done
for i in 1 2; do
	[ $i -gt 1 ] && head -c 4096 /dev/urandom | $T write "$dir/b.raw" 0
	$T backup create "$repo" "$dir/b.raw" >/dev/null 2>&1 || fail "create b$i"
done
all=$(ids)
[ "$(echo "$all" | wc -l)" = 8 ] || fail "8 backups expected"

$T backup prune --keep-last 2 --dry-run "$repo" >"$dir/out" || fail "prune dry run"
[ "$(grep -c '^would remove' "$dir/out")" = 4 ] || fail "dry run: $(cat "$dir/out")"
[ "$(grep -c '^keep' "$dir/out")" = 4 ] || fail "dry run keeps: $(cat "$dir/out")"
[ "$(ids)" = "$all" ] || fail "dry run removed backups"

$T backup prune "$repo" 2>"$dir/err" && fail "prune without rules ran"
grep -q "no --keep-\* rule" "$dir/err" || fail "prune without rules: $(cat "$dir/err")"

before=$(nchunks)
$T backup prune --keep-last 2 "$repo" >"$dir/out" || fail prune
left=$(ids)
# The two newest of a (backups 5 and 6) and both of b.
want=$(echo "$all" | sed -n '5,8p')
[ "$left" = "$want" ] || fail "prune kept [$left], want [$want]"
[ "$(nchunks)" = "$before" ] || fail "prune removed chunks"

$T backup gc "$repo" >"$dir/out" || fail "gc"
grep -q "removed 0 " "$dir/out" || fail "gc under the default grace removed young chunks: $(cat "$dir/out")"
grep -q "kept [1-9][0-9]* unreferenced" "$dir/out" || fail "gc kept nothing: $(cat "$dir/out")"
$T backup gc --grace 0 --dry-run "$repo" >"$dir/out" || fail "gc dry run"
[ "$(nchunks)" = "$before" ] || fail "gc --dry-run removed chunks"
$T backup gc --grace 0 "$repo" >"$dir/out" || fail "gc --grace 0"
ref=$(referenced)
[ "$(nchunks)" = "$ref" ] || fail "after gc $(nchunks) chunk files, the indexes reference $ref"
[ "$ref" -lt "$before" ] || fail "gc removed nothing"
$T backup verify "$repo" >/dev/null || fail "verify after gc"
for id in $left; do
	$T backup restore "$repo" "$id" "$dir/out.raw" || fail "restore $id after gc"
	rm -f "$dir/out.raw"
done
echo "prune kept 4 of 8, gc left exactly the $ref referenced chunks"

# gc racing with backups that deduplicate against garbage: make every
# chunk of c.raw garbage, then back it up again while gc loops.
head -c $((24 * M)) /dev/urandom >"$dir/c.raw"
(while [ ! -e "$dir/stop" ]; do $T backup gc --grace 0 "$repo" >/dev/null 2>&1; done) &
gcpid=$!
for round in 1 2 3 4 5; do
	id=$($T backup create --no-track "$repo" "$dir/c.raw" 2>/dev/null) || fail "round $round: create"
	$T backup verify "$repo" "$id" >"$dir/v" || fail "round $round: backup made beside gc is damaged: $(cat "$dir/v")"
	$T backup forget "$repo" "$id" || fail "round $round: forget"
done
touch "$dir/stop"
wait "$gcpid"
gcpid=
$T backup verify "$repo" >/dev/null || fail "verify after the race"
echo "5 backups beside a looping gc: intact"
echo ok
