#!/bin/bash
# The base of an incremental backup is found newest first, a batch of
# manifests at a time: a disk whose last backup is older than the 16
# newest manifests (20 backups of other disks in between, many in the same
# second) is still backed up incrementally on that last backup, and
# "latest" is the newest backup of the repository.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires python3
M=$((1 << 20))

jget() {   # ID KEY: one field of the backup's manifest
	$T backup show --json "$dir/repo" "$1" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

$T backup init --chunk-size 1M "$dir/repo" || fail "init"
$T create -t dynamic "$dir/a.vhd" 8M >/dev/null || fail "create a.vhd"
head -c $((3 * M)) /dev/urandom | $T write "$dir/a.vhd" 0 || fail "fill a.vhd"
a1=$($T backup create "$dir/repo" "$dir/a.vhd" 2>"$dir/err") || fail "backup a: $(cat "$dir/err")"
a2=$($T backup create "$dir/repo" "$dir/a.vhd" 2>"$dir/err") || fail "backup a again: $(cat "$dir/err")"
[ "$(jget "$a2" kind)" = incremental ] || fail "second backup of a is not incremental"
for i in $(seq 1 20); do
	head -c $((M + i)) /dev/urandom >"$dir/b$i.raw"
	last=$($T backup create --no-track "$dir/repo" "$dir/b$i.raw" 2>"$dir/err") || fail "backup b$i: $(cat "$dir/err")"
done
[ "$($T backup list "$dir/repo" | grep -c '^20')" = 22 ] || fail "list: $($T backup list "$dir/repo")"
[ "$(jget latest id)" = "$last" ] || fail "latest is $(jget latest id), not $last"
head -c $((2 * M)) /dev/urandom | $T write "$dir/a.vhd" 4M || fail "write a.vhd"
a3=$($T backup create "$dir/repo" "$dir/a.vhd" 2>"$dir/err") || fail "backup a a third time: $(cat "$dir/err")"
[ "$(jget "$a3" kind)" = incremental ] || fail "third backup of a is not incremental: $(jget "$a3" reason)"
[ "$(jget "$a3" parent)" = "$a2" ] || fail "third backup of a builds on $(jget "$a3" parent), not $a2"
[ "$(jget "$a3" chunks-read)" = 2 ] || fail "third backup read $(jget "$a3" chunks-read) chunks, not 2"
[ "$(jget latest id)" = "$a3" ] || fail "latest is not $a3"
$T read "$dir/a.vhd" 0 $((8 * M)) >"$dir/a.ref" || fail "read a.vhd"
$T backup restore "$dir/repo" latest "$dir/a.out" || fail "restore latest"
cmp "$dir/a.ref" "$dir/a.out" || fail "restore of $a3 differs from the disk"
echo ok
