#!/bin/bash
# The backup command line: exit codes and one-line errors for bad usage
# and bad input, list/show JSON with the documented keys, ID and "latest",
# restore refusing to replace a file without --force, a repository that is
# not one, a source that does not exist, block-size-odd raw disks.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires python3
repo=$dir/repo

expect_rc() {   # RC MESSAGE-PART CMD...
	local want=$1 msg=$2 rc
	shift 2
	"$@" >"$dir/out" 2>"$dir/err"
	rc=$?
	[ $rc = "$want" ] || fail "'$*' exited $rc, want $want: $(cat "$dir/err")"
	[ -z "$msg" ] || grep -q -- "$msg" "$dir/err" || fail "'$*': message lacks '$msg': $(cat "$dir/err")"
	[ "$want" = 0 ] || grep -q '^usage:' "$dir/err" || [ "$(wc -l <"$dir/err")" = 1 ] ||
		fail "'$*': error is not one line: $(cat "$dir/err")"
}

expect_rc 2 "usage:" $T backup
expect_rc 2 "unknown backup command" $T backup frobnicate
expect_rc 2 "usage:" $T backup init
expect_rc 2 "chunk size" $T backup init --chunk-size 12Q "$repo"
expect_rc 1 "power of two" $T backup init --chunk-size 3M "$repo"
expect_rc 0 "" $T backup init "$repo"
expect_rc 1 "not empty" $T backup init "$repo"
expect_rc 1 "not a backup repository" $T backup list "$dir"
expect_rc 1 "cannot open" $T backup create "$repo" "$dir/missing.raw"
expect_rc 0 "" $T backup list "$repo"
[ "$(wc -l <"$dir/out")" = 1 ] || fail "empty list prints more than its header"
expect_rc 0 "" $T backup list --json "$repo"
[ "$(cat "$dir/out")" = "[]" ] || fail "empty JSON list: $(cat "$dir/out")"
expect_rc 1 "no backups" $T backup show "$repo" latest
expect_rc 1 "not a backup ID" $T backup show "$repo" ../../etc/passwd
expect_rc 1 "no backup 20250101T000000Z-00000000" $T backup show "$repo" 20250101T000000Z-00000000

# A raw disk of an odd size (not a multiple of 512).
head -c 3000001 /dev/urandom >"$dir/odd.raw"
expect_rc 0 "" $T backup create "$repo" "$dir/odd.raw"
id=$(cat "$dir/out")
[ "$(wc -l <"$dir/out")" = 1 ] || fail "create printed more than the ID on stdout"
# -p into a file (not a terminal): progress lines, never \r redraws
# (a repository of its own: the checks below count this one's backups).
expect_rc 0 "" $T backup init "$dir/repo2"
expect_rc 0 "" $T backup create -p "$dir/repo2" "$dir/odd.raw"
id2=$(cat "$dir/out")
grep -q $'\r' "$dir/err" && fail "backup -p drew a bar with \\r into a file"
grep -q '^backup: 100%' "$dir/err" || fail "backup -p: no progress line: $(cat "$dir/err")"
expect_rc 0 "" $T backup restore -p "$dir/repo2" "$id2" "$dir/odd-restored.raw"
grep -q $'\r' "$dir/err" && fail "restore -p drew a bar with \\r into a file"
grep -q '^restore: 100%' "$dir/err" || fail "restore -p: no progress line: $(cat "$dir/err")"
cmp "$dir/odd.raw" "$dir/odd-restored.raw" || fail "restore -p: data differ"
expect_rc 0 "" $T backup show --json "$repo" "$id"
python3 - "$dir/out" "$id" <<'EOF' || fail "show --json"
import json, sys
b = json.load(open(sys.argv[1]))
for k in ["id", "source", "time", "virtual-size", "parent", "kind", "chunks-read",
          "bytes-stored", "disk-id", "consistency", "chunk-size",
          "index-sha256", "change-tracking"]:
    assert k in b, k
assert b["id"] == sys.argv[2]
assert b["virtual-size"] == 3000001 and b["kind"] == "full" and b["parent"] is None
assert b["source"].endswith("/odd.raw") and b["source-format"] == "raw"
EOF
expect_rc 0 "" $T backup list --json "$repo"
python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); assert len(l)==1 and l[0]["id"]==sys.argv[2]' "$dir/out" "$id" || fail "list --json"
expect_rc 1 "multiple of 512" $T backup restore -O fixed "$repo" "$id" "$dir/odd.vhd"
[ ! -e "$dir/odd.vhd" ] || fail "failed restore left odd.vhd"
expect_rc 0 "" $T backup restore "$repo" latest "$dir/odd.out"
cmp "$dir/odd.raw" "$dir/odd.out" || fail "odd-sized raw restore differs"
expect_rc 1 "already exists" $T backup restore "$repo" "$id" "$dir/odd.out"
expect_rc 0 "" $T backup restore --force "$repo" "$id" "$dir/odd.out"
expect_rc 2 "unknown output format" $T backup restore -O qcow2 "$repo" "$id" "$dir/x"
expect_rc 1 "" $T backup restore "$repo" "$id" "$dir/no/such/dir/x.raw"

# Human output names the backup.
expect_rc 0 "" $T backup list "$repo"
grep -q "$id" "$dir/out" || fail "list does not show $id"
expect_rc 0 "" $T backup show "$repo" "$id"
grep -q "^kind: *full" "$dir/out" || fail "show: $(cat "$dir/out")"
expect_rc 0 "" $T backup verify "$repo" "$id"
grep -q "^ok: 1 backups" "$dir/out" || fail "verify: $(cat "$dir/out")"
expect_rc 2 "" $T backup prune --keep-last x "$repo"
expect_rc 2 "no --keep" $T backup prune "$repo"
expect_rc 0 "" $T backup prune --keep-daily 1 "$repo"
grep -q "^keep .*daily" "$dir/out" || fail "prune: $(cat "$dir/out")"
expect_rc 1 "no backup" $T backup forget "$repo" 20250101T000000Z-00000000
# Folder repositories can always delete: nothing is ever forgotten.
expect_rc 1 "backup $id is not forgotten" $T backup unforget "$repo" "$id"
expect_rc 1 "not a backup ID" $T backup unforget "$repo" bogus
expect_rc 2 "usage:" $T backup unforget "$repo"
expect_rc 0 "" $T backup list --forgotten "$repo"
[ "$(wc -l <"$dir/out")" = 1 ] || fail "list --forgotten: $(cat "$dir/out")"
expect_rc 0 "" $T backup forget "$repo" "$id"
expect_rc 1 "no backup $id" $T backup unforget "$repo" "$id"
expect_rc 0 "" $T backup gc --grace 0 "$repo"
grep -q "removed 1 " "$dir/out" || fail "gc: $(cat "$dir/out")"
# A repository from the future is refused, not misread.
sed -i 's/"version": 1/"version": 2/' "$repo/repo.json"
expect_rc 1 "version 2 is not supported" $T backup list "$repo"
echo ok
