#!/bin/bash
# Object Lock repositories on S3 (backup init --object-lock DAYS) against a
# real radosgw (tests/ceph-cluster.bash):
#  - chunks, indexes and manifests get COMPLIANCE retention; the client's
#    own credentials cannot delete them (s3probe delete is refused);
#  - prune and forget of a locked backup mark it forgotten
#    (backups/ID.forgotten, no retention): list, show and restore no longer
#    see it; gc neither extends its manifest, index or chunks nor marks the
#    chunks only it used, and reports a locked unreferenced chunk as kept;
#    the live backup's objects are extended;
#  - expiry without waiting a day: a backup copied object by object into a
#    locked repository with a 20 s retention (s3probe put --retain-until)
#    is forgotten, kept by gc while locked (gc --dry-run says which it
#    would delete), and deleted by gc (manifest,
#    index, chunks, then the marker) once the retention passed;
#  - a backup reusing chunks copied in with 10 minutes of retention extends
#    them to 2 days at its commit; through tests/tools/flaky-proxy --deny
#    retention= (every retention call AccessDenied) such a backup fails
#    and commits nothing;
#  - gc through that proxy counts the objects whose retention it could not
#    extend (text and --output=json) and exits 1 saying so;
#  - list says when forgotten backups exist, list --forgotten names them
#    with the end of their retention; a forgotten marker forged with the
#    client's credentials is undone by unforget, which verifies the backup
#    (damaged, exit 1, when its chunks are gone);
#  - tampering with the client's credentials (delete markers over a
#    manifest, an index and a chunk; newer versions over a chunk, a
#    manifest and repo.json) hides nothing: list, verify, restore and gc
#    read the original versions, and gc extends their retention.
. "$(dirname "$0")/s3-common.bash"
PROXY_RETRIES=2
ret() { TO $P retention "s3://vhds-locked/$1"; }
# The non-zero chunk digests of index file $1, one a line.
digests() {
	python3 - "$1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"VBKI"
n = int.from_bytes(data[24:32], "little")
for i in range(n):
    d = data[32 + 32 * i:64 + 32 * i].hex()
    if d != "0" * 64:
        print(d)
PY
}


TO $T create -t dynamic "$dir/d.vhd" 16M >/dev/null || fail "create vhd"
head -c $((8 * M)) /dev/urandom | TO $T write "$dir/d.vhd" 0 || fail "fill"

# ---- retention, and what the client's credentials cannot do ----
L=s3://vhds-locked/r
TO $T backup init --chunk-size 1M --object-lock 1 "$L" 2>"$dir/err" || fail "init --object-lock"
grep -q '"object-lock-days": 1' <(TO $P get s3://vhds-locked/r/repo.json -) || fail "repo.json does not record the lock days"
lid1=$(TO $T backup create "$L" "$dir/d.vhd" 2>"$dir/err") || fail "backup to a locked repository"
head -c $((2 * M)) /dev/urandom | TO $T write "$dir/d.vhd" 0 || fail "write"
lid2=$(TO $T backup create "$L" "$dir/d.vhd" 2>"$dir/err") || fail "second backup to a locked repository"
until1=$(ret "r/backups/$lid1.json") || fail "retention get"
[ "$until1" -gt $(($(date +%s) + 86000)) ] || fail "manifest has no retention of a day ($until1)"
TO $P delete "s3://vhds-locked/r/backups/$lid1.json" 2>/dev/null && fail "a locked manifest was deleted"
ck=$(TO $P list s3://vhds-locked/r/chunks | sed -n 1p | cut -f1)
TO $P delete "s3://vhds-locked/$ck" 2>/dev/null && fail "a locked chunk object was deleted"

# ---- prune of a locked backup: forgotten ----
TO $P get "s3://vhds-locked/r/backups/$lid1.idx" "$dir/idx1" && TO $P get "s3://vhds-locked/r/backups/$lid2.idx" "$dir/idx2" ||
	fail "get indexes"
only1=$(comm -23 <(digests "$dir/idx1" | sort -u) <(digests "$dir/idx2" | sort -u) | sed -n 1p)
[ -n "$only1" ] || fail "no chunk only $lid1 uses"
only1=r/chunks/${only1:0:2}/$only1
conly1=$(ret "$only1") && until2=$(ret "r/backups/$lid2.json") || fail "retention get"
TO $T backup prune --keep-last 1 "$L" >"$dir/prune" 2>"$dir/err" || fail "prune in a locked repository"
grep -q "^remove .*$lid1.*forgotten; .*Object Lock retention until 20" "$dir/prune" || fail "prune: $(cat "$dir/prune")"
grep -q "^keep .*$lid2" "$dir/prune" || fail "prune: $(cat "$dir/prune")"
TO $P head "s3://vhds-locked/r/backups/$lid1.forgotten" >/dev/null || fail "no forgotten marker"
[ "$(ret "r/backups/$lid1.forgotten")" = 0 ] || fail "the forgotten marker has a retention"
TO $P head "s3://vhds-locked/r/backups/$lid1.json" >/dev/null || fail "the locked manifest went"
TO $T backup list "$L" >"$dir/list" || fail "list"
grep -q "^$lid1 " "$dir/list" && fail "list shows the forgotten backup: $(cat "$dir/list")"
grep -q "^$lid2 " "$dir/list" || fail "list lost $lid2: $(cat "$dir/list")"
TO $T backup show "$L" "$lid1" >/dev/null 2>"$dir/err" && fail "show of a forgotten backup"
grep -q 'forgotten' "$dir/err" || fail "show of a forgotten backup: $(cat "$dir/err")"
TO $T backup restore "$L" "$lid1" "$dir/out.raw" 2>"$dir/err" && fail "restore of a forgotten backup"
# A second prune leaves it alone (it is not listed any more).
TO $T backup prune --keep-last 1 "$L" >"$dir/prune" 2>"$dir/err" || fail "second prune"
grep -q "$lid1" "$dir/prune" && fail "second prune: $(cat "$dir/prune")"

# An unreferenced chunk object under retention (a copy under another
# name): gc tries, is refused, reports it and goes on.
TO $P get "s3://vhds-locked/$ck" "$dir/ck" || fail "get a locked chunk"
orphan=r/chunks/ab/ab$(printf '%062d' 7)
TO $P put "s3://vhds-locked/$orphan" "$dir/ck" --retain-until $(($(date +%s) + 86400)) || fail "put an orphan chunk"
sleep 2
TO $T backup gc --dry-run --grace 0 "$L" >"$dir/gc" 2>"$dir/err" || fail "gc --dry-run: $(cat "$dir/err")"
grep -q '^gc: 1 forgotten backups stay under Object Lock' "$dir/gc" || fail "gc --dry-run: $(cat "$dir/gc")"
TO $T backup gc --grace 0 "$L" >"$dir/gc" 2>"$dir/err" || fail "gc in a locked repository: $(cat "$dir/err")"
grep -q 'had their Object Lock retention extended' "$dir/gc" || fail "gc did not extend retention: $(cat "$dir/gc")"
grep -qE '^gc: [0-9]+ unreferenced chunks are under Object Lock' "$dir/gc" || fail "gc did not report the locked garbage: $(cat "$dir/gc")"
grep -q '^gc: 1 forgotten backups stay under Object Lock' "$dir/gc" || fail "gc: $(cat "$dir/gc")"
TO $P head "s3://vhds-locked/$orphan" >/dev/null || fail "gc deleted a locked object"
# The maintenance lock has no retention: gone after gc.
TO $P head s3://vhds-locked/r/lock >/dev/null 2>&1 && fail "the lock object stayed after gc"
[ "$(ret "r/backups/$lid2.json")" -gt "$until2" ] || fail "retention of the kept backup not extended"
[ "$(ret "r/backups/$lid1.json")" = "$until1" ] || fail "gc extended the forgotten manifest"
[ "$(ret "r/backups/$lid1.idx")" -lt $((until1 + 60)) ] || fail "gc extended the forgotten index"
[ "$(ret "$only1")" = "$conly1" ] || fail "gc extended a chunk only the forgotten backup uses"
TO $T backup gc --grace 0 --output=json "$L" >"$dir/gc.json" 2>"$dir/err" || fail "gc --output=json"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["forgotten-locked"] == 1 and j["locked"] >= 2, j' "$dir/gc.json" ||
	fail "gc json: $(cat "$dir/gc.json")"
# (the whole repository would report the orphan copy: its name is not its
# content)
TO $T backup verify "$L" "$lid2" >"$dir/v" 2>&1 || fail "verify: $(cat "$dir/v")"

# ---- forgotten backups are not silently hidden; unforget undoes one ----
# list says forgotten backups exist; list --forgotten names them with the
# end of their retention.
TO $T backup list "$L" >"$dir/list" 2>"$dir/err" || fail "list: $(cat "$dir/err")"
grep -q "1 forgotten backups are kept by Object Lock" "$dir/err" || fail "list does not mention the forgotten backup: $(cat "$dir/err")"
TO $T backup list --forgotten "$L" >"$dir/fl" 2>"$dir/err" || fail "list --forgotten: $(cat "$dir/err")"
grep -q "^$lid1 .*$(date -u -d "@$until1" "+%Y-%m-%d %H:%M:%S")" "$dir/fl" || fail "list --forgotten: $(cat "$dir/fl")"
[ "$(grep -c '^20' "$dir/fl")" = 1 ] || fail "list --forgotten: $(cat "$dir/fl")"
TO $T backup list --forgotten --output=json "$L" >"$dir/fl.json" || fail "list --forgotten --output=json"
python3 - "$dir/fl.json" "$lid1" "$until1" <<'PY' || fail "list --forgotten json: $(cat "$dir/fl.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert len(j) == 1 and j[0]["id"] == sys.argv[2], j
assert j[0]["locked-until"] == int(sys.argv[3]), j
assert j[0]["manifest"]["id"] == sys.argv[2], j
PY
# Someone with the client's credentials marks the live backup forgotten
# (the marker has no retention, so any writer can make one): list warns,
# and unforget brings it back, verified.
echo "forgotten 1" | TO $P put "s3://vhds-locked/r/backups/$lid2.forgotten" - || fail "forge a forgotten marker"
TO $T backup list "$L" >"$dir/list" 2>"$dir/err" || fail "list: $(cat "$dir/err")"
grep -q "^$lid2 " "$dir/list" && fail "a backup with a forgotten marker is listed"
grep -q "2 forgotten backups are kept" "$dir/err" || fail "list does not mention the forged marker: $(cat "$dir/err")"
TO $T backup unforget "$L" "$lid2" >"$dir/uf" 2>"$dir/err" || fail "unforget: $(cat "$dir/err") $(cat "$dir/uf")"
grep -q "^unforgotten: $lid2" "$dir/uf" && grep -q "^ok: 1 backups (0 damaged)" "$dir/uf" || fail "unforget: $(cat "$dir/uf")"
TO $P head "s3://vhds-locked/r/backups/$lid2.forgotten" >/dev/null 2>&1 && fail "unforget left the marker"
TO $T backup list "$L" >"$dir/list" 2>"$dir/err" || fail "list: $(cat "$dir/err")"
grep -q "^$lid2 " "$dir/list" || fail "unforgotten backup not listed: $(cat "$dir/list")"
# The backup prune forgot comes back the same way (its chunks are locked
# still); then it is forgotten again.
TO $T backup unforget --output=json "$L" "$lid1" >"$dir/uf.json" 2>"$dir/err" || fail "unforget $lid1: $(cat "$dir/err")"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["unforgotten"] == sys.argv[2] and j["verify"]["backups-damaged"] == 0, j' \
	"$dir/uf.json" "$lid1" || fail "unforget json: $(cat "$dir/uf.json")"
TO $T backup show "$L" "$lid1" >/dev/null 2>"$dir/err" || fail "show after unforget: $(cat "$dir/err")"
TO $T backup unforget "$L" "$lid1" 2>"$dir/err" && fail "unforget of a backup that is not forgotten"
grep -q "backup $lid1 is not forgotten" "$dir/err" || fail "unforget twice: $(cat "$dir/err")"
TO $T backup unforget "$L" 20990101T000000Z-00000000 2>"$dir/err" && fail "unforget of no backup"
grep -q "no backup 20990101T000000Z-00000000" "$dir/err" || fail "unforget of no backup: $(cat "$dir/err")"
TO $T backup forget "$L" "$lid1" 2>"$dir/err" || fail "forget again: $(cat "$dir/err")"
TO $T backup list --forgotten "$L" | grep -q "^$lid1 " || fail "not forgotten again"

# ---- expiry: a backup whose retention ends in 20 s ----
# Made in an unlocked repository, copied object by object into a locked
# one with a short retention (what radosgw lets a test set).
U=s3://vhds-backup/src
head -c $((3 * M)) /dev/urandom >"$dir/s.raw"
TO $T backup init --chunk-size 1M "$U" 2>"$dir/err" || fail "init $U"
sid=$(TO $T backup create --no-track "$U" "$dir/s.raw" 2>"$dir/err") || fail "backup to $U"
TO $P list s3://vhds-backup/src | cut -f1 | grep -E '^src/(backups|chunks)/' >"$dir/keys" || fail "list $U"
# The copy must end well before the retention does: a slow (loaded,
# sanitized) run tries again with a longer retention in a fresh prefix.
for win in 20 60 180; do
	short=short$win
	S3=s3://vhds-locked/$short
	TO $T backup init --chunk-size 1M --object-lock 1 "$S3" 2>"$dir/err" || fail "init $S3"
	exp=$(($(date +%s) + win))
	while read -r k; do
		TO $P get "s3://vhds-backup/$k" "$dir/obj" &&
			TO $P put "s3://vhds-locked/$short/${k#src/}" "$dir/obj" --retain-until "$exp" || fail "copy $k"
	done <"$dir/keys"
	[ $(($(date +%s) + win / 2)) -lt "$exp" ] && break
	echo "the copy took more than half of a $win s retention: again with a longer one" >&2
done
TO $T backup list "$S3" | grep -q "^$sid " || fail "the copied backup is not listed"
TO $T backup forget "$S3" "$sid" 2>"$dir/err" || fail "forget of a locked backup: $(cat "$dir/err")"
grep -q "forgotten; .*Object Lock" "$dir/err" || fail "forget of a locked backup: $(cat "$dir/err")"
TO $T backup list "$S3" | grep -q "^$sid " && fail "a forgotten backup is listed"
TO $T backup gc --grace 0 "$S3" >"$dir/gc" 2>"$dir/err" || fail "gc while locked: $(cat "$dir/err")"
grep -q '^gc: 1 forgotten backups stay' "$dir/gc" || fail "gc while locked: $(cat "$dir/gc")"
TO $P head "s3://vhds-locked/$short/backups/$sid.json" >/dev/null || fail "the locked manifest went"
while [ "$(date +%s)" -le $((exp + 1)) ]; do sleep 1; done
TO $T backup gc --dry-run --grace 0 "$S3" >"$dir/gc" 2>"$dir/err" || fail "gc --dry-run after the retention: $(cat "$dir/err")"
grep -q '^gc: 1 forgotten backups to remove' "$dir/gc" || fail "gc --dry-run after the retention: $(cat "$dir/gc")"
TO $P head "s3://vhds-locked/$short/backups/$sid.json" >/dev/null || fail "gc --dry-run deleted the manifest"
TO $T backup gc --grace 0 "$S3" >"$dir/gc" 2>"$dir/err" || fail "gc after the retention: $(cat "$dir/err")"
grep -q '^gc: 1 forgotten backups removed' "$dir/gc" || fail "gc after the retention: $(cat "$dir/gc")"
TO $P list "s3://vhds-locked/$short" | cut -f1 >"$dir/left" || fail "list $S3"
[ "$(cat "$dir/left")" = "$short/repo.json" ] || fail "left after gc: $(cat "$dir/left")"

# Copy the chunks of backup $1 of $U into $L with retention until $2.
copy_chunks() {
	local d
	TO $P get "s3://vhds-backup/src/backups/$1.idx" "$dir/cidx" || fail "get index $1"
	digests "$dir/cidx" | sort -u >"$dir/cd"
	while read -r d; do
		TO $P get "s3://vhds-backup/src/chunks/${d:0:2}/$d" "$dir/obj" &&
			TO $P put "s3://vhds-locked/r/chunks/${d:0:2}/$d" "$dir/obj" --retain-until "$2" ||
			fail "copy chunk $d"
	done <"$dir/cd"
}

# ---- unforget of a backup whose chunks are gone: damaged, exit 1 ----
# (what happens when a chunk's retention ended, and gc deleted it, before
# its manifest's did; forged here in an unlocked repository)
G=s3://vhds-backup/forged
TO $T backup init --chunk-size 1M "$G" 2>"$dir/err" || fail "init $G"
gid=$(TO $T backup create --no-track "$G" "$dir/s.raw" 2>"$dir/err") || fail "backup to $G"
echo "forgotten 1" | TO $P put "s3://vhds-backup/forged/backups/$gid.forgotten" - || fail "forge a marker in $G"
gk=$(TO $P list s3://vhds-backup/forged/chunks | sed -n 1p | cut -f1)
TO $P delete "s3://vhds-backup/$gk" || fail "delete $gk"
TO $T backup unforget "$G" "$gid" >"$dir/uf" 2>"$dir/err" && fail "unforget of a damaged backup passed"
grep -q "backup $gid is listed again, but it is damaged" "$dir/err" || fail "unforget of a damaged backup: $(cat "$dir/err")"
grep -q "^damaged: 1 backups (1 damaged)" "$dir/uf" || fail "unforget of a damaged backup: $(cat "$dir/uf")"
TO $T backup list "$G" | grep -q "^$gid " || fail "the unforgotten backup is not listed"

# ---- a backup reusing chunks whose retention ends sooner than its own ----
# The chunks of a disk, made in the unlocked repository and copied into the
# locked one with 10 minutes of retention: the backup that reuses them
# extends them to 2 days before it commits (never a manifest locked longer
# than its chunks).  One of them has a forged newer version over it, locked
# for 3 days: the original under it (what a reader falls back to) is
# extended too, not only the current version.
head -c $((2 * M)) /dev/urandom >"$dir/r2.raw"
u2=$(TO $T backup create --no-track "$U" "$dir/r2.raw" 2>"$dir/err") || fail "backup r2 to $U"
copy_chunks "$u2" $(($(date +%s) + 600))
fd=$(sed -n 1p "$dir/cd")
fk="r/chunks/${fd:0:2}/$fd"
fvid=$(TO $P versions "s3://vhds-locked/$fk" | awk -F'\t' -v k="$fk" '$1 == k && $3 == "version" { print $2 }')
[ -n "$fvid" ] || fail "no version of $fk"
head -c 1000 /dev/urandom | TO $P put "s3://vhds-locked/$fk" - --retain-until $(($(date +%s) + 3 * 86400)) ||
	fail "forge a version over $fk"
r2=$(TO $T backup create --no-track "$L" "$dir/r2.raw" 2>"$dir/err") || fail "backup reusing short-locked chunks: $(cat "$dir/err")"
m2=$(ret "r/backups/$r2.json") || fail "retention of $r2"
while read -r d; do
	c=$(ret "r/chunks/${d:0:2}/$d") || fail "retention of chunk $d"
	[ "$c" -ge "$m2" ] || fail "reused chunk $d locked until $c, its backup's manifest until $m2"
	[ "$c" -gt $(($(date +%s) + 2 * 86400 - 600)) ] || fail "reused chunk $d not extended to 2 days ($c)"
done <"$dir/cd"
c=$(TO $P retention "s3://vhds-locked/$fk" --version "$fvid") || fail "retention of the original of $fk"
[ "$c" -ge "$m2" ] || fail "the original version of reused chunk $fd (under a forged one) locked until $c, the manifest until $m2"
TO $T backup verify "$L" "$r2" >"$dir/v" 2>&1 || fail "verify $r2 (forged chunk version): $(cat "$dir/v")"

# The same when the store refuses to extend (a proxy answering
# AccessDenied to every retention call): the backup fails, nothing is
# committed.
head -c $((2 * M)) /dev/urandom >"$dir/r3.raw"
u3=$(TO $T backup create --no-track "$U" "$dir/r3.raw" 2>"$dir/err") || fail "backup r3 to $U"
copy_chunks "$u3" $(($(date +%s) + 600))
nb=$(TO $T backup list "$L" | wc -l)
proxy --deny retention=
TO $T backup create "${PX[@]}" --no-track "$L" "$dir/r3.raw" >"$dir/out" 2>"$dir/err" &&
	fail "a backup committed over chunks whose retention could not be extended"
stop_proxy
grep -q 'denied=[1-9]' "$dir/proxy.err" || fail "the proxy denied nothing: $(cat "$dir/proxy.err")"
grep -q 'reuses is under Object Lock only until .* cannot be extended .*not committed' "$dir/err" || fail "backup over short-locked chunks: $(cat "$dir/err")"
[ "$(TO $T backup list "$L" | wc -l)" = "$nb" ] || fail "a backup appeared: $(TO $T backup list "$L")"

# ---- gc that cannot extend retention fails, saying so ----
proxy --deny retention=
TO $T backup gc --grace 0 "${PX[@]}" "$L" >"$dir/gc" 2>"$dir/err" && fail "gc passed without extending any retention"
grep -qE "^gc: [1-9][0-9]* objects' Object Lock retention could not be read or extended" "$dir/gc" || fail "gc: $(cat "$dir/gc")"
grep -q 'Object Lock retention could not be extended on [1-9][0-9]* objects (the first: .*AccessDenied' "$dir/err" || fail "gc: $(cat "$dir/err")"
TO $T backup gc --grace 0 --output=json "${PX[@]}" "$L" >"$dir/gc.json" 2>"$dir/err" && fail "gc --output=json passed without extending"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["retention-failed"] >= 1, j' "$dir/gc.json" ||
	fail "gc json: $(cat "$dir/gc.json")"
stop_proxy
TO $T backup gc --grace 0 "$L" >"$dir/gc" 2>"$dir/err" || fail "gc without the proxy: $(cat "$dir/err")"

# radosgw ignores If-None-Match in a versioned (Object Lock) bucket: the
# maintenance lock is then taken by HEAD + PUT, so a held lock still keeps
# a second gc out instead of being overwritten.
printf 'gc pid 1 on elsewhere\nexpires %s\ntoken 00112233445566778899aabbccddeeff\n' $(($(date +%s) + 600)) |
	TO $P put s3://vhds-locked/r/lock - || fail "put a held lock"
TO $T backup gc --grace 0 "$L" >"$dir/gc" 2>"$dir/err" && fail "gc took a lock another process holds (If-None-Match ignored)"
grep -q "locked by gc pid 1 on elsewhere" "$dir/err" || fail "gc beside a held lock: $(cat "$dir/err")"
TO $P get s3://vhds-locked/r/lock - | grep -q "token 00112233445566778899aabbccddeeff" ||
	fail "the held lock was overwritten"
TO $P delete s3://vhds-locked/r/lock || fail "delete the held lock"

# ---- tampering with the client's credentials ----
# A DELETE without a version id only adds a delete marker, and radosgw lets
# a plain PUT add a newer version in a versioned bucket: neither may hide
# or replace the original (locked) versions.  Delete markers over a
# backup's manifest, index and one chunk; a garbage version over another
# chunk; a forged manifest over a second backup's and a forged repo.json
# without the lock.  list, verify and restore still see the originals.
TL=s3://vhds-locked/t
TO $T backup init --chunk-size 1M --object-lock 1 "$TL" 2>"$dir/err" || fail "init $TL"
head -c $((3 * M)) /dev/urandom >"$dir/t1.raw"
head -c $((3 * M)) /dev/urandom >"$dir/t2.raw"
t1=$(TO $T backup create --no-track "$TL" "$dir/t1.raw" 2>"$dir/err") || fail "backup t1: $(cat "$dir/err")"
t2=$(TO $T backup create --no-track "$TL" "$dir/t2.raw" 2>"$dir/err") || fail "backup t2: $(cat "$dir/err")"
TO $P get "$TL/backups/$t1.idx" "$dir/ti1" && TO $P get "$TL/backups/$t2.idx" "$dir/ti2" &&
	TO $P get "$TL/backups/$t2.json" "$dir/tm2" && TO $P get "$TL/repo.json" "$dir/trepo" || fail "get t objects"
c1=$(digests "$dir/ti1" | sed -n 1p) && c2=$(digests "$dir/ti2" | sed -n 1p) || fail "digests"
[ -n "$c1" ] && [ -n "$c2" ] && [ "$c1" != "$c2" ] || fail "no distinct chunks ($c1, $c2)"
for k in "backups/$t1.json" "backups/$t1.idx" "chunks/${c1:0:2}/$c1"; do
	TO $P delete "$TL/$k" --marker || fail "delete marker over $k"
	TO $P head "$TL/$k" >/dev/null 2>&1 && fail "$k still visible after a delete marker"
done
head -c 1000 /dev/urandom | TO $P put "$TL/chunks/${c2:0:2}/$c2" - || fail "put garbage over chunk $c2"
sed 's|"source": "[^"]*"|"source": "/forged"|' "$dir/tm2" | TO $P put "$TL/backups/$t2.json" - || fail "put a forged manifest"
TO $P get "$TL/backups/$t2.json" - | grep -q '"/forged"' || fail "the forged manifest is not the current version"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); del j["object-lock-days"]; print(json.dumps(j))' "$dir/trepo" |
	TO $P put "$TL/repo.json" - || fail "put a forged repo.json"
TO $T backup list "$TL" >"$dir/list" 2>"$dir/err" || fail "list after tampering: $(cat "$dir/err")"
grep -q "^$t1 " "$dir/list" || fail "list lost $t1 behind delete markers: $(cat "$dir/list")"
grep -q "^$t2 .*t2.raw" "$dir/list" || fail "list lost $t2 or shows the forged manifest: $(cat "$dir/list")"
grep -q forged "$dir/list" && fail "list shows the forged manifest: $(cat "$dir/list")"
TO $T backup verify "$TL" >"$dir/v" 2>&1 || fail "verify after tampering: $(cat "$dir/v")"
for t in 1 2; do
	id=t$t
	rm -f "$dir/out.raw"
	TO $T backup restore "$TL" "${!id}" "$dir/out.raw" 2>"$dir/err" || fail "restore ${!id} after tampering: $(cat "$dir/err")"
	cmp "$dir/out.raw" "$dir/t$t.raw" || fail "${!id} restores other bytes after tampering"
done
# gc reads the original indexes too: it removes none of their chunks; and
# it extends the retention of the original versions, not of the current
# ones (a delete marker has none, a forged version is not the backup).
orig_vid() {
	TO $P versions "$TL/$1" | awk -F'\t' -v k="t/$1" '$1 == k && $3 == "version" { v = $2 } END { print v }'
}
vj=$(orig_vid "backups/$t1.json") && vc=$(orig_vid "chunks/${c2:0:2}/$c2") || fail "versions"
[ -n "$vj" ] && [ -n "$vc" ] || fail "no original versions ($vj, $vc)"
rj=$(TO $P retention "$TL/backups/$t1.json" --version "$vj") &&
	rcv=$(TO $P retention "$TL/chunks/${c2:0:2}/$c2" --version "$vc") || fail "retention of the originals"
TO $T backup gc --grace 0 "$TL" >"$dir/gc" 2>"$dir/err" || fail "gc after tampering: $(cat "$dir/err") $(cat "$dir/gc")"
TO $T backup verify "$TL" >"$dir/v" 2>&1 || fail "verify after gc: $(cat "$dir/v")"
[ "$(TO $P retention "$TL/backups/$t1.json" --version "$vj")" -gt "$rj" ] ||
	fail "gc did not extend the original manifest behind a delete marker"
[ "$(TO $P retention "$TL/chunks/${c2:0:2}/$c2" --version "$vc")" -gt "$rcv" ] ||
	fail "gc did not extend the original of a chunk with a newer version"
echo "ok"
