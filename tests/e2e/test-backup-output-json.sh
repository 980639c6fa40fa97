#!/bin/bash
# --output=json (and its alias --json) on the backup subcommands that
# report: create (without --vm), verify, repair, restore, prune, gc and
# forget.  Each prints one JSON document on stdout (an array for prune)
# whose values are those of the repository (checked against the human
# output and the files), and the human output stays what it was.  These
# commands printed only human lines before (create refused --output
# without --vm).
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires jq
# is FILE JQ-EXPR: FILE is one valid JSON document and EXPR holds for it.
is() {
	jq -e "$2" "$1" >/dev/null 2>&1 || fail "$1: not ($2): $(head -c 600 "$1")"
	[ "$(jq -s length "$1")" = 1 ] || fail "$1: not one document"
}
M=$((1 << 20))
repo=$dir/repo
disk=$dir/disk.raw
"$T" backup init --chunk-size 1M "$repo" >/dev/null || fail init
head -c $((4 * M)) /dev/urandom >"$disk"

# create: the manifest, as backup show prints it.
"$T" backup create --output=json "$repo" "$disk" >"$dir/c1.json" 2>/dev/null || fail "create --output=json"
is "$dir/c1.json" '.kind == "full" and .chunks == 4 and .["virtual-size"] == 4194304'
id1=$(jq -r .id "$dir/c1.json")
"$T" backup show --output=json "$repo" "$id1" >"$dir/show.json" || fail show
cmp -s "$dir/c1.json" "$dir/show.json" || fail "create's JSON is not the manifest: $(cat "$dir/c1.json") / $(cat "$dir/show.json")"
head -c $M /dev/urandom | dd of="$disk" bs=1M seek=2 conv=notrunc status=none
"$T" backup create --json "$repo" "$disk" >"$dir/c2.json" 2>/dev/null || fail "create --json"
is "$dir/c2.json" '.["chunks-new"] == 1'
id2=$(jq -r .id "$dir/c2.json")
# Human: the ID alone on stdout, as before.
id3=$("$T" backup create "$repo" "$disk" 2>/dev/null) || fail "create (human)"
[ "$(jq -r '.[2].id' <("$T" backup list --json "$repo"))" = "$id3" ] ||
	fail "human create printed '$id3', not the ID"

# verify, clean.
"$T" backup verify --json "$repo" >"$dir/v.json" || fail "verify --json: exit $?"
is "$dir/v.json" '.status == "ok" and .backups == 3 and .["backups-damaged"] == 0 and .chunks == 5 and .messages == []'
"$T" backup verify "$repo" >"$dir/v.txt" || fail verify
"$T" backup verify --output=human "$repo" >"$dir/v2.txt" || fail "verify --output=human"
cmp -s "$dir/v.txt" "$dir/v2.txt" || fail "--output=human differs from the default"
grep -q '^ok: 3 backups (0 damaged), 5 chunks' "$dir/v.txt" || fail "human verify: $(cat "$dir/v.txt")"

# verify, damaged: chunk 2 of the second backup (its own) cut short.
h=$(dd if="$disk" bs=1M skip=2 count=1 status=none | sha256sum | cut -c1-64)
chunk=$repo/chunks/${h:0:2}/$h
[ -f "$chunk" ] || fail "no chunk file $chunk"
truncate -s 10 "$chunk"
"$T" backup verify --json "$repo" >"$dir/vd.json"; rc=$?
[ $rc = 1 ] || fail "damaged verify --json: exit $rc, want 1"
is "$dir/vd.json" '.status == "damaged" and .["backups-damaged"] == 2 and .["chunks-damaged"] == 1 and .["chunks-quarantined"] == 1'
is "$dir/vd.json" "[.messages[] | select(contains(\"$id2\"))] | length >= 1"

# repair from the disk, which still holds the data.
"$T" backup repair --json "$repo" "$disk" >"$dir/r.json" || fail "repair --json: exit $?"
is "$dir/r.json" '.["chunks-restored"] == 1 and .["backups-repaired"] == 2 and .["backups-lost"] == 0 and .verify.status == "damaged"'
"$T" backup verify --json "$repo" >"$dir/v3.json" || fail "verify after repair"
is "$dir/v3.json" '.status == "ok"'

# restore: the backup by its ID also for "latest", and the format chosen.
"$T" backup restore --json "$repo" latest "$dir/out.raw" >"$dir/rs.json" || fail "restore --json"
is "$dir/rs.json" ".backup == \"$id3\" and .format == \"raw\" and .[\"virtual-size\"] == 4194304 and .destination == \"$dir/out.raw\""
cmp -s "$dir/out.raw" "$disk" || fail "restore wrote the wrong data"
"$T" backup restore "$repo" latest "$dir/out2.raw" >"$dir/rs.txt" || fail "restore (human)"
[ -s "$dir/rs.txt" ] && fail "human restore printed on stdout: $(cat "$dir/rs.txt")"

# prune: an array, one element per backup, oldest first.
"$T" backup prune --keep-last 1 --dry-run --output=json "$repo" >"$dir/p.json" || fail "prune --dry-run"
is "$dir/p.json" "length == 3 and .[0].id == \"$id1\" and .[0].action == \"would remove\" and .[2].keep == true and .[2].action == \"keep\""
"$T" backup list --json "$repo" | jq -e 'length == 3' >/dev/null || fail "dry run removed backups"
"$T" backup prune --keep-last 2 --json "$repo" >"$dir/p2.json" || fail prune
is "$dir/p2.json" '[.[] | select(.action == "remove")] | length == 1'

# forget, then gc of what nothing references any more.
"$T" backup forget --json "$repo" "$id2" >"$dir/f.json" || fail "forget --json"
is "$dir/f.json" ".forgotten == \"$id2\""
"$T" backup list --json "$repo" | jq -e "length == 1 and .[0].id == \"$id3\"" >/dev/null ||
	fail "forget left: $("$T" backup list "$repo")"
"$T" backup gc --grace 0 --dry-run --json "$repo" >"$dir/g.json" || fail "gc --dry-run"
# (the unreferenced chunk, and the quarantined .bad file when gc counts it)
is "$dir/g.json" '.["dry-run"] == true and .removed >= 1'
n=$(jq .removed "$dir/g.json")
"$T" backup gc --grace 0 --json "$repo" >"$dir/g2.json" || fail gc
is "$dir/g2.json" ".[\"dry-run\"] == false and .removed == $n and .[\"bytes-removed\"] > 0"
"$T" backup gc --grace 0 "$repo" | grep -q '^gc: 4 chunks, removed 0 ' || fail "human gc"

# A value that is not human or json is a usage error everywhere.
for sub in "verify" "gc" "prune --keep-last 1" "forget" "create" "restore" "repair"; do
	# shellcheck disable=SC2086
	"$T" backup $sub --output=yaml "$repo" x y >/dev/null 2>&1; rc=$?
	[ $rc = 2 ] || fail "backup $sub --output=yaml: exit $rc, want 2"
done
echo "backup create/verify/repair/restore/prune/gc/forget print JSON with --output=json"
