#!/bin/bash
# The maintenance lock and rewritten objects of an S3 repository against a
# real radosgw (tests/ceph-cluster.bash), with tests/tools/flaky-proxy
# failing or holding chosen requests:
#  - a lock object whose GET fails (503): gc does not remove it and take
#    the lock, it fails saying the lock cannot be read; the object stays;
#  - the same beside a backup's commit step: the backup fails (EAGAIN,
#    "cannot tell whether a prune or gc runs") instead of taking the error
#    for "no gc runs" and committing;
#  - a gc held (its chunk listing stalled 30 s) while another process takes
#    its lock (a lock object with another token): the gc's refresh does not
#    overwrite it, the gc stops before its first delete ("lock ... was
#    lost"), the orphan chunk it would have swept stays, its unlock leaves
#    the other process's lock in place;
#  - verify quarantining a damaged chunk (its DELETE held 30 s) while a
#    --full backup replaces that chunk with a good copy: the backup sees
#    the quarantine (HEX.bad) in its commit step and fails (EAGAIN) instead
#    of committing with a chunk the held DELETE then removes;
#  - Object Lock (versioned) bucket: after a backup long enough for its
#    heartbeat to be rewritten, and after a gc long enough for its lock to
#    be renewed and to remove a backup killed after its heartbeat was
#    rewritten (dead after 60 s), no writers/ object and no lock object is
#    visible (every version deleted, none "comes back").
. "$(dirname "$0")/s3-common.bash"

# lock_obj EXPIRES TOKEN: a lock object as another process writes it
lock_obj() {
	printf 'gc pid 1 on elsewhere\nexpires %s\ntoken %s\n' "$1" "$2" >"$dir/other.lock"
	TO $P put s3://vhds-lk/r/lock "$dir/other.lock" >/dev/null || fail "put a lock object"
}

R=s3://vhds-lk/r
TO $T create -t dynamic "$dir/d.vhd" 8M >/dev/null || fail "create vhd"
head -c $((5 * M)) /dev/urandom | TO $T write "$dir/d.vhd" 0 || fail "fill"
TO $T backup init --chunk-size 1M "$R" 2>"$dir/err" || fail "init"
TO $T backup create "$R" "$dir/d.vhd" >/dev/null 2>"$dir/err" || fail "first backup"

# ---- a lock that cannot be read is not taken ----
other=0123456789abcdef0123456789abcdef
lock_obj $(($(date +%s) + 600)) $other
proxy --fail-match "GET /vhds-lk/r/lock "
TO $T backup gc "${PX[@]}" --grace 0 "$R" >"$dir/out" 2>"$dir/err" && fail "gc took a lock it could not read"
grep -q 'lock object exists and cannot be read' "$dir/err" || fail "gc, unreadable lock: $(cat "$dir/err")"
TO $P get s3://vhds-lk/r/lock "$dir/got.lock" && cmp -s "$dir/got.lock" "$dir/other.lock" ||
	fail "gc removed or replaced a lock it could not read"

# ---- a backup's commit step cannot read the lock: not committed ----
TO $T backup create "${PX[@]}" --no-track "$R" "$dir/d.vhd" >"$dir/out" 2>"$dir/err" &&
	fail "a backup committed while the lock could not be read"
grep -q 'cannot tell whether a prune or gc runs' "$dir/err" || fail "backup, unreadable lock: $(cat "$dir/err")"
[ "$(TO $T backup list --output=json "$R" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
	fail "the backup that could not read the lock was committed: $(TO $T backup list "$R")"
stop_proxy
TO $P delete s3://vhds-lk/r/lock || fail "delete the lock object"

# ---- a gc whose lock is taken while it stalls stops before deleting ----
TO $P get "s3://vhds-lk/$(TO $P list s3://vhds-lk/r/chunks | sed -n 1p | cut -f1)" "$dir/ck" || fail "get a chunk"
orphan=r/chunks/ab/ab$(printf '%062d' 7)
TO $P put "s3://vhds-lk/$orphan" "$dir/ck" >/dev/null || fail "put an orphan chunk"
sleep 2
proxy --stall-once "prefix=r%2Fchunks"
TO $T backup gc "${PX[@]}" --grace 0 "$R" >"$dir/gc.out" 2>"$dir/gc.err" &
bgpid=$!
for _ in $(seq 100); do TO $P head s3://vhds-lk/r/lock >/dev/null 2>&1 && break; sleep 0.1; done
TO $P get s3://vhds-lk/r/lock - | grep -q '^token [0-9a-f]\{32\}$' || fail "the gc's lock object has no token"
# another process takes the lock (as after our expiry)
TO $P delete s3://vhds-lk/r/lock || fail "delete the gc's lock"
lock_obj $(($(date +%s) + 600)) $other
rc=0
wait "$bgpid" || rc=$?
bgpid=
[ "$rc" != 0 ] || fail "gc went on after its lock was taken: $(cat "$dir/gc.out")"
grep -q 'repository lock of this gc was lost' "$dir/gc.err" || fail "gc, lock taken: $(cat "$dir/gc.err")"
stop_proxy
grep -q 'stalled=1' "$dir/proxy.err" || fail "the proxy held no request: $(cat "$dir/proxy.err")"
TO $P head "s3://vhds-lk/$orphan" >/dev/null || fail "gc deleted a chunk after it lost its lock"
TO $P get s3://vhds-lk/r/lock "$dir/got.lock" && cmp -s "$dir/got.lock" "$dir/other.lock" ||
	fail "gc overwrote or removed the lock another process holds: $(cat "$dir/got.lock" 2>/dev/null)"
TO $P delete s3://vhds-lk/r/lock || fail "delete the other lock"
TO $T backup gc --grace 0 "$R" >"$dir/out" 2>"$dir/err" || fail "gc after the other lock is gone"
TO $P head "s3://vhds-lk/$orphan" >/dev/null 2>&1 && fail "gc did not sweep the orphan"
TO $P list s3://vhds-lk/r/lock | grep -q . && fail "gc left its lock"

# ---- verify's quarantine beside a backup --full replacing the chunk ----
# A chunk damaged in place; verify's DELETE of it is held 30 s, while a
# --full backup replaces it with a good copy: that backup must not commit
# (the held DELETE removes its copy afterwards).
ck=$(TO $P list s3://vhds-lk/r/chunks | sed -n 1p | cut -f1)
[ -n "$ck" ] || fail "no chunk"
TO $P get "s3://vhds-lk/$ck" "$dir/c" || fail "get a chunk"
printf 'XXXX' | dd of="$dir/c" bs=1 seek=100 conv=notrunc status=none
TO $P delete "s3://vhds-lk/$ck" && TO $P put "s3://vhds-lk/$ck" "$dir/c" >/dev/null || fail "damage a chunk"
proxy --stall-once "DELETE /vhds-lk/r/chunks/"
TO $T backup verify "${PX[@]}" "$R" >"$dir/v.out" 2>&1 &
bgpid=$!
for _ in $(seq 200); do TO $P head "s3://vhds-lk/$ck.bad" >/dev/null 2>&1 && break; sleep 0.1; done
TO $P head "s3://vhds-lk/$ck.bad" >/dev/null || fail "verify did not quarantine: $(cat "$dir/v.out")"
sleep 1
TO $T backup create --full --no-track "$R" "$dir/d.vhd" >"$dir/out" 2>"$dir/err" &&
	fail "a backup committed while its replaced chunk was being quarantined"
grep -q 'is being quarantined by a concurrent verify' "$dir/err" || fail "backup beside a quarantine: $(cat "$dir/err")"
wait "$bgpid"
bgpid=
grep -q "quarantined as" "$dir/v.out" || fail "verify: $(cat "$dir/v.out")"
stop_proxy
grep -q 'stalled=1' "$dir/proxy.err" || fail "the proxy held no request: $(cat "$dir/proxy.err")"
[ "$(TO $T backup list --output=json "$R" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
	fail "a backup beside the quarantine was committed: $(TO $T backup list "$R")"
TO $P head "s3://vhds-lk/$ck" >/dev/null 2>&1 && fail "the damaged chunk was not removed"
# run again: the chunk is stored again, the backup verifies
id=$(TO $T backup create --full --no-track "$R" "$dir/d.vhd" 2>"$dir/err") || fail "backup after the quarantine"
TO $T backup verify "$R" "$id" >"$dir/v" 2>&1 || fail "verify after the quarantine: $(cat "$dir/v")"

# ---- Object Lock (versioned): rewritten objects leave no version behind ----
L=s3://vhds-lk-ol/r
TO $T backup init --chunk-size 1M --object-lock 1 "$L" 2>"$dir/err" || fail "init --object-lock"
# two progress steps, 8 s each: the heartbeat (every 10 s) is rewritten
VHDTOOL_TEST_STEP_DELAY_US=8000000 TO $T backup create --no-track -p "$L" "$dir/d.vhd" >/dev/null 2>"$dir/err" ||
	fail "slowed backup to a locked repository"
TO $P list s3://vhds-lk-ol/r/writers >"$dir/keys" || fail "list writers"
[ ! -s "$dir/keys" ] || fail "writer objects visible after the backup: $(cat "$dir/keys")"
# a backup killed after its heartbeat was rewritten: a dead writer (60 s
# without heartbeat) that gc removes
VHDTOOL_TEST_STEP_DELAY_US=60000000 $T backup create --no-track -p "$L" "$dir/d.vhd" >/dev/null 2>&1 &
bgpid=$!
sleep 13
kill -9 "$bgpid"
wait "$bgpid" 2>/dev/null
bgpid=
TO $P list s3://vhds-lk-ol/r/writers | grep -q . || fail "no heartbeat of the killed backup"
sleep 62
# a gc held 30 s on its chunk listing: its lock is renewed at 20 s
proxy --stall-once "prefix=r%2Fchunks"
TO $T backup gc "${PX[@]}" --grace 0 "$L" >"$dir/out" 2>"$dir/err" || fail "held gc in a locked repository"
stop_proxy
grep -q '1 temporary files removed' "$dir/out" || fail "gc did not remove the dead writer: $(cat "$dir/out")"
TO $P list s3://vhds-lk-ol/r/lock >"$dir/keys" || fail "list lock"
[ ! -s "$dir/keys" ] || fail "the lock object is visible after the gc: $(cat "$dir/keys")"
TO $P list s3://vhds-lk-ol/r/writers >"$dir/keys" || fail "list writers"
[ ! -s "$dir/keys" ] || fail "a dead writer's objects are visible after the gc: $(cat "$dir/keys")"
TO $T backup gc --grace 0 "$L" >"$dir/out" 2>"$dir/err" || fail "a second gc: $(cat "$dir/err")"
echo "ok"
