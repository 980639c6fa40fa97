#!/bin/bash
# Backup repositories on S3 (s3://BUCKET/PREFIX) against a real radosgw
# (tests/ceph-cluster.bash, one cluster for this file):
#  - init, a full and an incremental backup of a dynamic VHD: the
#    incremental reads only the changed chunks (manifest counters); each
#    restores to the bytes it was taken from; list and show; verify clean;
#    the same list through the AWS shared files and a profile (a wrong
#    secret and a missing profile refused clearly); the object layout is
#    the folder layout under PREFIX/;
#  - a disk of one block repeated: the chunk is stored once (threads
#    storing the same new chunk at once);
#  - the manifest cache: list fills it with the store's bytes, a list
#    through it does no manifest GET (counted at a proxy), a damaged copy
#    is fetched again, copies of unlisted or forgotten backups and stale
#    temporary files are removed, --no-cache makes none; show of a backup
#    forgotten elsewhere asks the store; a manifest replaced in the store
#    is read again (listed size); another location whose repo.json claims
#    the same uuid gets its own folder (its forged manifest never shows);
#    a cache folder others can write to is not used;
#  - one chunk object deleted and another damaged in the bucket: verify
#    reports both (and quarantines the damaged one as HEX.bad), repair from
#    the source heals, verify clean again; a chunk object cut shorter than
#    a header is replaced by the next backup that holds the chunk;
#  - prune + gc while a (slowed) backup runs: the backup completes and
#    restores; a later gc removes the garbage;
#  - (Object Lock: tests/e2e/test-backup-s3-objectlock.sh)
#  - through tests/tools/flaky-proxy failing half the requests with 503: a
#    full backup and its restore succeed;
#  - a PUT-once that lands but whose answer is lost (flaky-proxy
#    --lose-once): the manifest, the index, the gc lock: the client's retry
#    meets 412, reads its own object back and succeeds; nothing is removed.
. "$(dirname "$0")/s3-common.bash"

R=s3://vhds-backup/repo/one
jget() {   # REPO ID KEY...
	TO $T backup show --output=json "$1" "$2" |
		python3 -c 'import json,sys; j=json.load(sys.stdin); [print("null" if j[k] is None else j[k]) for k in sys.argv[1:]]' "${@:3}"
}

# ---- round trip: full, incremental, restore, list, show, verify ----
TO $T create -t dynamic "$dir/d.vhd" 40M >/dev/null || fail "create vhd"
head -c $((12 * M)) /dev/urandom | TO $T write "$dir/d.vhd" 0 || fail "fill"
head -c $((3 * M)) /dev/urandom | TO $T write "$dir/d.vhd" 30M || fail "fill 2"
TO $T read "$dir/d.vhd" 0 40M >"$dir/ref1" || fail "read ref1"
TO $T backup init "$R" 2>"$dir/err" || fail "init"
TO $T backup init "$R" 2>"$dir/err" && fail "a second init over a repository succeeded"
id1=$(TO $T backup create -p "$R" "$dir/d.vhd" 2>"$dir/err") || fail "full backup"
# -p into a file: a line every 10%, with the rate to the store.
grep -q '% (.* MiB/s, [0-9.]* MiB/s to the store)$' "$dir/err" || fail "no progress with the rate to the store: $(cat "$dir/err")"
[ "$(jget "$R" "$id1" kind)" = full ] || fail "first backup is not full"
printf 'changed' | TO $T write "$dir/d.vhd" $((5 * M + 3)) || fail "write 1"
head -c 4096 /dev/urandom | TO $T write "$dir/d.vhd" $((31 * M)) || fail "write 2"
TO $T read "$dir/d.vhd" 0 40M >"$dir/ref2" || fail "read ref2"
id2=$(TO $T backup create --connections 3 "$R" "$dir/d.vhd" 2>"$dir/err") || fail "incremental backup"
[ "$(jget "$R" "$id2" kind)" = incremental ] || fail "second backup is not incremental"
[ "$(jget "$R" "$id2" chunks-read)" = 2 ] || fail "incremental read $(jget "$R" "$id2" chunks-read) chunks, 2 changed"
[ "$(jget "$R" "$id2" chunks-new)" = 2 ] || fail "incremental stored $(jget "$R" "$id2" chunks-new) chunks, 2 changed"
for pair in "$id1 ref1" "$id2 ref2"; do
	set -- $pair
	TO $T backup restore -p "$R" "$1" "$dir/out.raw" 2>"$dir/err" || fail "restore $1"
	grep -q '% (.* MiB/s, [0-9.]* MiB/s from the store)$' "$dir/err" || fail "no progress with the rate from the store: $(cat "$dir/err")"
	cmp "$dir/out.raw" "$dir/$2" || fail "backup $1 restores other bytes"
	rm -f "$dir/out.raw"
done
TO $T backup list "$R" >"$dir/list" || fail "list"
grep -q "^$id1 .* full " "$dir/list" && grep -q "^$id2 .* incremental " "$dir/list" || fail "list: $(cat "$dir/list")"
[ "$(jget "$R" latest id)" = "$id2" ] || fail "show latest"
TO $T backup verify "$R" >"$dir/v" 2>&1 || fail "verify: $(cat "$dir/v")"
grep -q '^ok: 2 backups' "$dir/v" || fail "verify: $(cat "$dir/v")"
# The same repository through the AWS shared files and a profile, with
# no AWS variable set: credentials from the credentials file, endpoint
# and region from the config file; a wrong secret there is refused by
# the store with a clear message.
cat >"$dir/aws-credentials" <<EOF
[default]
aws_access_key_id = NOTTHISONE
aws_secret_access_key = NOTTHISONE
[vhds]
aws_access_key_id = $AWS_ACCESS_KEY_ID
aws_secret_access_key = $AWS_SECRET_ACCESS_KEY   # a comment
[wrong]
aws_access_key_id = $AWS_ACCESS_KEY_ID
aws_secret_access_key = wrong$AWS_SECRET_ACCESS_KEY
EOF
cat >"$dir/aws-config" <<EOF
[profile vhds]
region = $AWS_REGION
services = here
[profile wrong]
region = $AWS_REGION
endpoint_url = $AWS_ENDPOINT_URL
[services here]
s3 =
  endpoint_url = $AWS_ENDPOINT_URL
EOF
profile_run() {   # PROFILE ARGS...
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL -u AWS_REGION \
		AWS_SHARED_CREDENTIALS_FILE="$dir/aws-credentials" AWS_CONFIG_FILE="$dir/aws-config" \
		AWS_PROFILE="$1" timeout 120 "${@:2}"
}
profile_run vhds $T backup list "$R" >"$dir/list2" 2>"$dir/err" || fail "list through the profile: $(cat "$dir/err")"
cmp "$dir/list" "$dir/list2" || fail "list through the profile differs: $(cat "$dir/list2")"
profile_run wrong $T backup list "$R" >/dev/null 2>"$dir/err" && fail "a wrong secret in the profile was accepted"
grep -qi "signature\|denied\|403" "$dir/err" || fail "a wrong secret: unclear message: $(cat "$dir/err")"
profile_run nope $T backup list "$R" >/dev/null 2>"$dir/err" && fail "a missing profile was accepted"
grep -q 'AWS profile "nope"' "$dir/err" || fail "a missing profile: unclear message: $(cat "$dir/err")"
# The layout: the folder's names under the prefix, nothing left of the
# writers (heartbeats, touched lists).
TO $P list s3://vhds-backup/repo/one | cut -f1 >"$dir/keys" || fail "s3probe list"
grep -q '^repo/one/repo.json$' "$dir/keys" || fail "no repo.json"
grep -q "^repo/one/backups/$id2.idx$" "$dir/keys" && grep -q "^repo/one/backups/$id2.json$" "$dir/keys" || fail "no index / manifest"
grep -q '^repo/one/writers/' "$dir/keys" && fail "writer objects left: $(grep writers "$dir/keys")"
n=$(grep -cE '^repo/one/chunks/([0-9a-f]{2})/\1[0-9a-f]{62}$' "$dir/keys")
[ "$n" = "$(grep -c '^repo/one/chunks/' "$dir/keys")" ] && [ "$n" -gt 5 ] || fail "chunk keys: $(grep chunks "$dir/keys" | head -3)"

# A disk of one 4 MiB block repeated: threads storing the same new chunk
# at once store it once.
head -c $((4 * M)) /dev/urandom >"$dir/blk"
for _ in 1 2 3 4 5 6 7 8; do cat "$dir/blk"; done >"$dir/rep.raw"
rid=$(TO $T backup create --no-track --connections 8 "$R" "$dir/rep.raw" 2>"$dir/err") || fail "backup of repeated blocks"
[ "$(jget "$R" "$rid" chunks-new)" = 1 ] || fail "repeated blocks: $(jget "$R" "$rid" chunks-new) chunks new, 1 expected"
TO $T backup restore "$R" "$rid" "$dir/out.raw" 2>"$dir/err" || fail "restore repeated blocks"
cmp "$dir/out.raw" "$dir/rep.raw" || fail "repeated blocks restore other bytes"
rm -f "$dir/out.raw"

# ---- the manifest cache (list, show, create) ----
# list fills it (one file per backup, the store's bytes); a list through
# it reads no manifest from the store (counted at a proxy: exactly one
# GET fewer per backup than --no-cache); a damaged copy is fetched again;
# copies of backups no longer listed and stale temporary files go.
MC=$dir/mc
TO $T backup list --cache-dir "$MC" "$R" >"$dir/list3" 2>"$dir/err" || fail "list with a cache: $(cat "$dir/err")"
[ "$(ls "$MC"/*/backups/ | wc -l)" = 3 ] || fail "cache: $(ls -la "$MC"/*/backups/)"
cdir=$(echo "$MC"/*/backups)
for id in $id1 $id2 $rid; do
	TO $P get "s3://vhds-backup/repo/one/backups/$id.json" "$dir/m.json" || fail "get manifest $id"
	cmp "$dir/m.json" "$cdir/$id.json" || fail "cached manifest of $id differs from the store's"
done
[ "$(stat -c %a "$cdir")" = 700 ] || fail "cache folder mode $(stat -c %a "$cdir")"
# reqs VAR: stop the proxy (in this shell, so that it is waited for) and
# put the number of requests it saw in VAR.
reqs() { stop_proxy; printf -v "$1" '%s' "$(sed -n 's/^requests=\([0-9]*\) .*/\1/p' "$dir/proxy.err")"; }
# (The cache folder is per location, endpoint included: the proxy keeps
# one port, and a first list through it fills its folder.)
pport=$(ceph_free_port)
proxy --port "$pport"; TO $T backup list --cache-dir "$MC" "${PX[@]}" "$R" >/dev/null 2>"$dir/err" || fail "list via proxy: $(cat "$dir/err")"
reqs n_first
proxy --port "$pport"; TO $T backup list --cache-dir "$MC" "${PX[@]}" "$R" >"$dir/list4" 2>"$dir/err" || fail "cached list via proxy: $(cat "$dir/err")"
reqs n_cached
proxy --port "$pport"; TO $T backup list --no-cache "${PX[@]}" "$R" >"$dir/list5" 2>"$dir/err" || fail "uncached list via proxy: $(cat "$dir/err")"
reqs n_store
cmp "$dir/list3" "$dir/list4" && cmp "$dir/list3" "$dir/list5" || fail "cached and uncached lists differ"
# With the cache: repo.json and one listing, nothing more.
[ "$n_cached" = 2 ] && [ "$((n_store - n_cached))" = 3 ] && [ "$n_first" = "$n_store" ] ||
	fail "requests: $n_cached with the cache, $n_first filling it, $n_store without (3 manifests)"
printf 'garbage' >"$cdir/$id2.json"
: >"$cdir/.$id1.tmp.1.2"
cp "$cdir/$id1.json" "$cdir/20200101T000000Z-00000000.json"
TO $T backup show --cache-dir "$MC" "$R" "$id2" >/dev/null 2>"$dir/err" || fail "show over a damaged cached copy: $(cat "$dir/err")"
TO $P get "s3://vhds-backup/repo/one/backups/$id2.json" "$dir/m.json" || fail "get manifest"
cmp "$dir/m.json" "$cdir/$id2.json" || fail "a damaged cached copy was not fetched again"
TO $T backup list --cache-dir "$MC" "$R" >"$dir/list4" 2>"$dir/err" || fail "list: $(cat "$dir/err")"
cmp "$dir/list3" "$dir/list4" || fail "list after cache damage differs"
[ -e "$cdir/.$id1.tmp.1.2" ] && fail "a stale temporary file stayed in the cache"
[ -e "$cdir/20200101T000000Z-00000000.json" ] && fail "a copy of an unlisted backup stayed in the cache"
cp "$cdir/$rid.json" "$dir/rid.json"
TO $T backup forget "$R" "$rid" || fail "forget the repeated-block backup"
# show of a backup forgotten elsewhere asks the store, not a stale copy.
TO $T backup show --cache-dir "$MC" "$R" "$rid" >/dev/null 2>"$dir/err" && fail "show of a forgotten backup through a stale cached copy succeeded"
grep -q "no backup $rid" "$dir/err" || fail "show of a forgotten backup: $(cat "$dir/err")"
cp "$dir/rid.json" "$cdir/$rid.json"
TO $T backup list --cache-dir "$MC" "$R" >"$dir/list6" 2>"$dir/err" || fail "list: $(cat "$dir/err")"
[ -e "$cdir/$rid.json" ] && fail "the forgotten backup's copy stayed in the cache"
[ "$(ls "$cdir" | wc -l)" = 2 ] || fail "cache after forget: $(ls "$cdir")"
grep -q "$rid" "$dir/list6" && fail "list shows a forgotten backup"
# A manifest replaced in the store (another size than the cached copy):
# list reads the store's and reports it damaged, then the good one again.
TO $P get "s3://vhds-backup/repo/one/backups/$id1.json" "$dir/m1.json" || fail "get manifest"
printf '{"not": "a manifest"}' >"$dir/bad.json"
TO $P put "s3://vhds-backup/repo/one/backups/$id1.json" "$dir/bad.json" || fail "put a damaged manifest"
TO $T backup list --cache-dir "$MC" "$R" >"$dir/list7" 2>"$dir/err" && fail "list of a damaged manifest exits 0"
grep -q "^$id1 *DAMAGED" "$dir/list7" || fail "a manifest replaced in the store hidden by the cache: $(cat "$dir/list7")"
TO $P put "s3://vhds-backup/repo/one/backups/$id1.json" "$dir/m1.json" || fail "put the manifest back"
TO $T backup list --cache-dir "$MC" "$R" >"$dir/list7" 2>"$dir/err" || fail "list: $(cat "$dir/err")"
cmp "$dir/list6" "$dir/list7" || fail "list after the manifest came back differs"
# Another location with the same uuid in its repo.json (anyone who can
# write a repo.json can claim one) gets its own cache folder: its forged
# manifest never reaches the real repository's list.
TO $P get s3://vhds-backup/repo/one/repo.json "$dir/rj" || fail "get repo.json"
TO $P put s3://vhds-backup/twin/repo.json "$dir/rj" || fail "copy repo.json"
sed 's/"source": *"[^"]*"/"source": "\/EVIL\/forged"/' "$dir/m1.json" >"$dir/evil.json"
grep -q EVIL "$dir/evil.json" || fail "could not forge a manifest: $(cat "$dir/m1.json")"
TO $P put "s3://vhds-backup/twin/backups/$id1.json" "$dir/evil.json" || fail "put the forged manifest"
rm -rf "$MC"
TO $T backup list --cache-dir "$MC" s3://vhds-backup/twin >"$dir/twin" 2>"$dir/err" || fail "list the twin: $(cat "$dir/err")"
grep -q EVIL "$dir/twin" || fail "the twin's list: $(cat "$dir/twin")"
TO $T backup list --cache-dir "$MC" "$R" >"$dir/list7" 2>"$dir/err" || fail "list: $(cat "$dir/err")"
cmp "$dir/list6" "$dir/list7" || fail "a twin repository's manifest reached the real one's list: $(cat "$dir/list7")"
TO $T backup show --cache-dir "$MC" "$R" latest >"$dir/show" 2>"$dir/err" || fail "show latest: $(cat "$dir/err")"
grep -q EVIL "$dir/show" && fail "a twin repository's manifest reached show latest"
[ "$(ls "$MC" | wc -l)" = 2 ] || fail "one cache folder per location: $(ls "$MC")"
cdir=$(echo "$MC"/*/backups/$id2.json); cdir=${cdir%/*}
# A cache folder others can write to is not used (a warning; the store is
# read).
mkdir -m 777 "$dir/shared"
TO $T backup list --cache-dir "$dir/shared" "$R" >"$dir/list7" 2>"$dir/err" || fail "list with a shared cache folder: $(cat "$dir/err")"
grep -q "not a private folder" "$dir/err" || fail "a shared cache folder: $(cat "$dir/err")"
cmp "$dir/list6" "$dir/list7" || fail "list with a shared cache folder differs"
[ -z "$(ls "$dir/shared")" ] || fail "copies in a folder others can write to: $(ls "$dir/shared")"
TO $T backup list --no-cache --cache-dir "$dir/mc2" "$R" >/dev/null 2>"$dir/err" || fail "list --no-cache: $(cat "$dir/err")"
[ -e "$dir/mc2" ] && fail "--no-cache made a cache"
# A store's repo.json is not trusted to name the cache folder.
TO $P get s3://vhds-backup/repo/one/repo.json "$dir/rj" || fail "get repo.json"
sed 's/"uuid": "[0-9a-f]*"/"uuid": "..\/..\/escape"/' "$dir/rj" >"$dir/rj2"
grep -q escape "$dir/rj2" || fail "could not forge repo.json: $(cat "$dir/rj")"
TO $P put s3://vhds-backup/hostile/repo.json "$dir/rj2" || fail "put the forged repo.json"
TO $T backup list --cache-dir "$dir/mc3/a" s3://vhds-backup/hostile >/dev/null 2>"$dir/err" || fail "list of a repository with a forged uuid: $(cat "$dir/err")"
[ -e "$dir/mc3" ] || [ -e "$dir/escape" ] || [ -e "$(dirname "$dir")/escape" ] && fail "a forged uuid made cache folders: $(ls "$dir")"
TO $P list s3://vhds-backup/repo/one | cut -f1 >"$dir/keys" || fail "s3probe list"

# ---- damage in the bucket: verify finds it, repair heals ----
# Two chunks of the latest backup (the source still holds them), read from
# its index (docs/backup-format.md).
TO $P get "s3://vhds-backup/repo/one/backups/$id2.idx" "$dir/idx" || fail "get index"
python3 - "$dir/idx" >"$dir/pick" <<'PY' || fail "read index"
import sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"VBKI"
n = int.from_bytes(data[24:32], "little")
ds = [data[32 + 32 * i:64 + 32 * i].hex() for i in range(n)]
ds = [d for d in ds if d != "0" * 64]
for d in ds[:2]:
    print("repo/one/chunks/%s/%s" % (d[:2], d))
PY
k1=$(sed -n 1p "$dir/pick")
k2=$(sed -n 2p "$dir/pick")
[ -n "$k1" ] && [ -n "$k2" ] && [ "$k1" != "$k2" ] || fail "two chunks of $id2: $(cat "$dir/pick")"
TO $P delete "s3://vhds-backup/$k1" || fail "delete a chunk"
TO $P get "s3://vhds-backup/$k2" "$dir/c2" || fail "get a chunk"
printf 'XXXX' | dd of="$dir/c2" bs=1 seek=100 conv=notrunc status=none
TO $P delete "s3://vhds-backup/$k2" && TO $P put "s3://vhds-backup/$k2" "$dir/c2" || fail "damage a chunk"
TO $T backup verify "$R" >"$dir/v" 2>&1 && fail "verify passed a damaged repository"
grep -q "chunk ${k1##*/}: missing" "$dir/v" || fail "verify missed the deleted chunk: $(cat "$dir/v")"
grep -q "chunk ${k2##*/}: .*quarantined" "$dir/v" || fail "verify missed the damaged chunk: $(cat "$dir/v")"
TO $P head "s3://vhds-backup/$k2.bad" >/dev/null || fail "no quarantined copy $k2.bad"
TO $T backup repair "$R" "$dir/d.vhd" >"$dir/rep" 2>&1 || fail "repair: $(cat "$dir/rep")"
TO $T backup verify "$R" >"$dir/v" 2>&1 || fail "verify after repair: $(cat "$dir/v")"
# (the source changed since id1: repair healed only what it still holds)
TO $T backup restore "$R" "$id2" "$dir/out.raw" 2>"$dir/err" || fail "restore after repair"
cmp "$dir/out.raw" "$dir/ref2" || fail "restore after repair differs"
rm -f "$dir/out.raw"

# A chunk object cut shorter than a chunk header: the next backup holding
# that chunk replaces it (counted in chunks-replaced), never references it.
TO $P delete "s3://vhds-backup/$k1" && printf 'short' | TO $P put "s3://vhds-backup/$k1" - ||
	fail "truncate a chunk"
tid=$(TO $T backup create --no-track "$R" "$dir/d.vhd" 2>"$dir/err") || fail "backup over a truncated chunk: $(cat "$dir/err")"
[ "$(jget "$R" "$tid" chunks-replaced)" -ge 1 ] || fail "the truncated chunk was not replaced"
[ "$(TO $P head "s3://vhds-backup/$k1" | cut -d' ' -f1)" -gt 24 ] || fail "$k1 still truncated"
TO $T backup verify "$R" "$tid" >"$dir/v" 2>&1 || fail "verify after the truncated chunk: $(cat "$dir/v")"
TO $T backup forget "$R" "$tid" || fail "forget $tid"

# ---- prune + gc while a backup runs ----
head -c $((8 * M)) /dev/urandom | TO $T write "$dir/d.vhd" 10M || fail "write 3"
TO $T read "$dir/d.vhd" 0 40M >"$dir/ref3" || fail "read ref3"
VHDTOOL_TEST_STEP_DELAY_US=3000000 TO $T backup create --full -p "$R" "$dir/d.vhd" >"$dir/bg.out" 2>"$dir/bg.err" &
bgpid=$!
for _ in $(seq 100); do
	TO $P list s3://vhds-backup/repo/one/writers | grep -q . && break
	sleep 0.1
done
TO $P list s3://vhds-backup/repo/one/writers | grep -q . || fail "no heartbeat object of the running backup: $(cat "$dir/bg.err")"
TO $T backup prune --keep-last 1 "$R" >"$dir/prune" 2>"$dir/err" || fail "prune beside a backup"
TO $T backup gc --grace 0 "$R" >"$dir/gc" 2>"$dir/err" || fail "gc beside a backup"
wait "$bgpid" || { bgpid=; fail "the backup beside prune and gc failed: $(cat "$dir/bg.err")"; }
bgpid=
id3=$(cat "$dir/bg.out")
TO $T backup restore "$R" "$id3" "$dir/out.raw" 2>"$dir/err" || fail "restore of the backup made beside gc"
cmp "$dir/out.raw" "$dir/ref3" || fail "the backup made beside gc restores other bytes"
rm -f "$dir/out.raw"
# A probe key left by a backup killed between its PUT and its delete: gc
# removes it once past the grace period; no backup leaves one behind.
TO $P list s3://vhds-backup/repo/one/probe | grep -q . && fail "a backup left its probe key: $(TO $P list s3://vhds-backup/repo/one/probe)"
printf 1 | TO $P put s3://vhds-backup/repo/one/probe/if-none-match-00112233aabbccdd - || fail "put a stale probe key"
sleep 2
TO $T backup gc --grace 0 "$R" >"$dir/gc" 2>"$dir/err" || fail "gc"
TO $P list s3://vhds-backup/repo/one/probe | grep -q . && fail "gc left a stale probe key: $(TO $P list s3://vhds-backup/repo/one/probe)"
TO $T backup verify "$R" >"$dir/v" 2>&1 || fail "verify after gc: $(cat "$dir/v")"
[ "$(TO $T backup list --output=json "$R" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ] ||
	fail "prune --keep-last 1 beside a backup: $(TO $T backup list "$R")"

# ---- a store that answers 503 to half the requests ----
"$PROXY" --fail 0.5 --seed $$ --lifetime 280 "${AWS_ENDPOINT_URL#http://}" >"$dir/proxy.port" 2>"$dir/proxy.err" &
proxy_pid=$!
for _ in $(seq 50); do [ -s "$dir/proxy.port" ] && break; sleep 0.1; done
[ -s "$dir/proxy.port" ] || fail "flaky-proxy did not start: $(cat "$dir/proxy.err")"
FL=(--s3-endpoint "http://127.0.0.1:$(cat "$dir/proxy.port")" --s3-retries 30)
F=s3://vhds-flaky/r
TO $T backup init "${FL[@]}" --chunk-size 1M "$F" 2>"$dir/err" || fail "init through the flaky proxy"
fid=$(TO $T backup create "${FL[@]}" --no-track "$F" "$dir/d.vhd" 2>"$dir/err") || fail "backup through the flaky proxy"
TO $T read "$dir/d.vhd" 0 40M >"$dir/ref4" || fail "read ref4"
TO $T backup restore "${FL[@]}" "$F" "$fid" "$dir/out.raw" 2>"$dir/err" || fail "restore through the flaky proxy"
cmp "$dir/out.raw" "$dir/ref4" || fail "restore through the flaky proxy differs"
kill "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null; proxy_pid=
grep -q 'failed=[1-9]' "$dir/proxy.err" || fail "the proxy failed no request: $(cat "$dir/proxy.err")"

# ---- a put-once whose answer is lost: the retry reads back its own object ----
for what in .json .idx /r/lock; do
	"$PROXY" --fail 0 --lose-once "$what" --lifetime 280 "${AWS_ENDPOINT_URL#http://}" \
		>"$dir/proxy.port" 2>"$dir/proxy.err" &
	proxy_pid=$!
	for _ in $(seq 50); do [ -s "$dir/proxy.port" ] && break; sleep 0.1; done
	[ -s "$dir/proxy.port" ] || fail "flaky-proxy did not start: $(cat "$dir/proxy.err")"
	LO=(--s3-endpoint "http://127.0.0.1:$(cat "$dir/proxy.port")" --s3-retries 3)
	if [ "$what" = /r/lock ]; then
		TO $T backup gc "${LO[@]}" "$F" >"$dir/out" 2>"$dir/err" ||
			fail "gc after a lost answer to its lock PUT: $(cat "$dir/err")"
	else
		lid=$(TO $T backup create "${LO[@]}" --no-track "$F" "$dir/d.vhd" 2>"$dir/err") ||
			fail "backup after a lost answer to its $what PUT: $(cat "$dir/err")"
		TO $P head "s3://vhds-flaky/r/backups/$lid.idx" >/dev/null || fail "$lid.idx removed ($what)"
		TO $T backup verify "$F" "$lid" >"$dir/v" 2>&1 || fail "verify $lid ($what): $(cat "$dir/v")"
	fi
	kill "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null; proxy_pid=
	grep -q 'lost=1' "$dir/proxy.err" || fail "no answer to a $what PUT was lost: $(cat "$dir/proxy.err")"
done
echo "ok"
