#!/bin/bash
# The S3 client (s3/) against a real radosgw (tests/ceph-cluster.bash: one
# cluster and one radosgw for every case here), driven by the test tool
# s3probe: put/get/head round trips of 0, 1, 1 MiB and 4 MiB+1 bytes; keys
# with spaces, unicode, '+' and '%'; ranges; a listing of more than 1000
# keys (pages) and under a prefix; If-None-Match on an existing key; a
# missing key; delete; an Object Lock bucket (retention set with the PUT,
# delete refused, retention extended, shortening refused); every operation
# through flaky-proxy answering 503 SlowDown to half the requests, with
# retries counted; requests that get no answer (timeouts) and a port
# where nothing listens, retried; a wrong secret key refused with a clear
# 403.
set -eu
B=${BUILD:-build}
P=$B/tests/tools/s3probe
PROXY=$B/tests/tools/flaky-proxy
. "$(dirname "$0")/../lib.bash"
[ -x "$P" ] && [ -x "$PROXY" ] || skip "$P or $PROXY not built"
proxy_pid=
at_exit '[ -z "$proxy_pid" ] || { kill "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null; }'
. "$(dirname "$0")/../ceph-cluster.bash"
# Every client call bounded in time.
S() { timeout -k 5 120 "$P" "$@"; }
# expect_err ERRNAME CMD...: CMD fails with that error name.
expect_err() {
	local want=$1 rc=0

	shift
	"$@" >"$dir/out" 2>"$dir/err" || rc=$?
	[ "$rc" = 1 ] && grep -q "s3probe: $want:" "$dir/err" ||
		fail "$* -> rc $rc, wanted $want: $(cat "$dir/err")"
}

ceph_cluster_start "$dir/ceph"
ceph_rgw_start

S mb s3://test-bucket || fail "create bucket"
expect_err EEXIST S mb s3://test-bucket

# Round trips.
: >"$dir/size0"
printf x >"$dir/size1"
head -c 1M /dev/urandom >"$dir/size1m"
head -c $((4 * 1024 * 1024 + 1)) /dev/urandom >"$dir/size4m1"
for f in size0 size1 size1m size4m1; do
	S put "s3://test-bucket/rt/$f" "$dir/$f" || fail "put $f"
	S get "s3://test-bucket/rt/$f" "$dir/$f.back" || fail "get $f"
	cmp "$dir/$f" "$dir/$f.back" || fail "$f differs after a round trip"
	read -r size mtime etag _ < <(S head "s3://test-bucket/rt/$f") || fail "head $f"
	[ "$size" = "$(stat -c %s "$dir/$f")" ] || fail "head $f: size $size"
	[ "$etag" = "$(md5sum <"$dir/$f" | cut -c1-32)" ] || fail "head $f: ETag $etag is not the MD5"
	[ "$mtime" -gt $(($(date +%s) - 3600)) ] || fail "head $f: mtime $mtime"
done
# A bounded get refuses a larger object.
expect_err EFBIG S get s3://test-bucket/rt/size1m "$dir/x" --max 1000
# Ranges: inside, across the end, past the end.
S range s3://test-bucket/rt/size1m 1000 5000 "$dir/r" || fail "range"
cmp "$dir/r" <(tail -c +1001 "$dir/size1m" | head -c 5000) || fail "range 1000+5000 differs"
S range s3://test-bucket/rt/size1m $((1024 * 1024 - 10)) 100 "$dir/r" || fail "range at the end"
[ "$(stat -c %s "$dir/r")" = 10 ] || fail "range across the end: $(stat -c %s "$dir/r") bytes"
S range s3://test-bucket/rt/size1m $((2 * 1024 * 1024)) 100 "$dir/r" || fail "range past the end"
[ "$(stat -c %s "$dir/r")" = 0 ] || fail "range past the end returned data"

# Keys that need encoding.
i=0
for k in "with space" "ünïcødé/ключ" "plus+sign" "per%cent" "a=b&c?d" "tilde~star*"; do
	i=$((i + 1))
	printf '%s' "$k" >"$dir/k$i"
	S put "s3://test-bucket/keys/$k" "$dir/k$i" || fail "put key '$k'"
	S get "s3://test-bucket/keys/$k" "$dir/k$i.back" || fail "get key '$k'"
	cmp "$dir/k$i" "$dir/k$i.back" || fail "key '$k' differs"
done
S list s3://test-bucket/keys | cut -f1 >"$dir/keys"
printf '%s\n' "keys/a=b&c?d" "keys/plus+sign" "keys/per%cent" "keys/tilde~star*" \
	"keys/with space" "keys/ünïcødé/ключ" | LC_ALL=C sort >"$dir/keys.want"
diff "$dir/keys.want" "$dir/keys" || fail "listing of encoded keys"

# More than 1000 keys: pages of ListObjectsV2.
S putmany s3://test-bucket/many/k 1234 --threads 8 || fail "put 1234 keys"
[ "$(S list s3://test-bucket/many --count)" = 1234 ] || fail "list of 1234 keys"
S list s3://test-bucket/many | cut -f1 >"$dir/many"
seq -f 'many/k%06g' 0 1233 | diff - "$dir/many" >/dev/null || fail "keys of the paged listing"
[ "$(S list s3://test-bucket/many/k0001 --count)" = 100 ] || fail "list under a prefix"
[ "$(S list s3://test-bucket/nothing-here --count)" = 0 ] || fail "list of an empty prefix"

# If-None-Match on an existing key; missing keys.
expect_err EEXIST S put s3://test-bucket/rt/size1 "$dir/size1m" --if-none-match
S get s3://test-bucket/rt/size1 "$dir/x" && cmp "$dir/size1" "$dir/x" || fail "If-None-Match replaced the object"
S put s3://test-bucket/rt/new "$dir/size1" --if-none-match || fail "If-None-Match on a new key"
# The fallback for stores that ignore the header: HEAD then PUT.
expect_err EEXIST S --no-conditional put s3://test-bucket/rt/new "$dir/size1m" --if-none-match
S --no-conditional put s3://test-bucket/rt/new2 "$dir/size1" --if-none-match || fail "HEAD+PUT on a new key"
expect_err ENOENT S get s3://test-bucket/no/such/key "$dir/x"
grep -q "NoSuchKey" "$dir/err" || fail "missing key: no S3 code in: $(cat "$dir/err")"
expect_err ENOENT S head s3://test-bucket/no/such/key
expect_err ENXIO S get s3://no-such-bucket/key "$dir/x"

# Delete (of a missing key too: 0, as S3 does).
S delete s3://test-bucket/rt/size0 || fail "delete"
expect_err ENOENT S head s3://test-bucket/rt/size0
S delete s3://test-bucket/rt/size0 || fail "delete of a missing key"

# Object Lock.
S mb s3://lock-bucket --lock || fail "create an Object Lock bucket"
now=$(date +%s)
S put s3://lock-bucket/locked "$dir/size1m" --retain-until $((now + 3600)) || fail "put with retention"
until=$(S retention s3://lock-bucket/locked) || fail "get retention"
[ "$until" = $((now + 3600)) ] || fail "retention is $until, not $((now + 3600))"
expect_err EACCES S delete s3://lock-bucket/locked
S get s3://lock-bucket/locked "$dir/x" && cmp "$dir/size1m" "$dir/x" || fail "locked object gone after a refused delete"
S retention s3://lock-bucket/locked $((now + 7200)) || fail "extend retention"
[ "$(S retention s3://lock-bucket/locked)" = $((now + 7200)) ] || fail "retention not extended"
expect_err EACCES S retention s3://lock-bucket/locked $((now + 60))
S put s3://lock-bucket/free "$dir/size1" || fail "put without retention"
[ "$(S retention s3://lock-bucket/free)" = 0 ] || fail "retention of an object without"
S delete s3://lock-bucket/free || fail "delete of an unlocked object in a lock bucket"
expect_err ENOENT S head s3://lock-bucket/free
[ "$(S list s3://lock-bucket --count)" = 1 ] || fail "lock bucket listing"

# start_proxy ARGS...: (re)start flaky-proxy in front of radosgw.
start_proxy() {
	[ -z "$proxy_pid" ] || { kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; }
	: >"$dir/proxy.port"
	"$PROXY" "$@" --seed $$ --lifetime 300 "${AWS_ENDPOINT_URL#http://}" >"$dir/proxy.port" 2>"$dir/proxy.err" &
	proxy_pid=$!
	for _ in $(seq 50); do [ -s "$dir/proxy.port" ] && break; sleep 0.1; done
	[ -s "$dir/proxy.port" ] || fail "flaky-proxy did not start: $(cat "$dir/proxy.err")"
}

# Through a proxy that answers 503 SlowDown to half the requests: every
# operation succeeds, with retries.  (20 retries: a 1 in 2^21 chance per
# operation of 21 failures in a row.)
start_proxy --fail 0.5
F() { S --endpoint "http://127.0.0.1:$(cat "$dir/proxy.port")" --retries 20 --stats "$@" 2>>"$dir/stats"; }
: >"$dir/stats"
F put s3://test-bucket/flaky/big "$dir/size4m1" || fail "put through the flaky proxy"
F put s3://test-bucket/flaky/small "$dir/size1" --if-none-match || fail "conditional put through the flaky proxy"
F get s3://test-bucket/flaky/big "$dir/x" || fail "get through the flaky proxy"
cmp "$dir/size4m1" "$dir/x" || fail "get through the flaky proxy differs"
F range s3://test-bucket/rt/size1m 10 10 "$dir/r" || fail "range through the flaky proxy"
cmp "$dir/r" <(tail -c +11 "$dir/size1m" | head -c 10) || fail "range through the flaky proxy differs"
F head s3://test-bucket/flaky/big >/dev/null || fail "head through the flaky proxy"
[ "$(F list s3://test-bucket/many --count)" = 1234 ] || fail "paged list through the flaky proxy"
F putmany s3://test-bucket/flaky/m 40 --threads 4 || fail "parallel puts through the flaky proxy"
F retention s3://lock-bucket/locked $((now + 9000)) || fail "retention through the flaky proxy"
F delete s3://test-bucket/flaky/big || fail "delete through the flaky proxy"
retries=$(sed -n 's/.*retries=\([0-9]*\).*/\1/p' "$dir/stats" | paste -sd+ | bc)
[ "$retries" -gt 0 ] || fail "no retries counted through the flaky proxy: $(cat "$dir/stats")"
echo "flaky proxy: $retries retries over $(wc -l <"$dir/stats") commands"

# Answers that never come: a proxy that stalls every request -> the
# per-request timeout, retried, then ETIMEDOUT; one that stalls every
# third -> success with retries.
start_proxy --fail 0 --stall 1
expect_err ETIMEDOUT S --endpoint "http://127.0.0.1:$(cat "$dir/proxy.port")" --timeout-ms 500 --retries 2 \
	head s3://test-bucket/rt/size1
grep -q "after 3 attempts" "$dir/err" || fail "timeouts: $(cat "$dir/err")"
start_proxy --fail 0 --stall-every 3
: >"$dir/stats"
for i in 1 2 3 4 5 6; do
	S --endpoint "http://127.0.0.1:$(cat "$dir/proxy.port")" --timeout-ms 1500 --retries 20 --stats \
		get s3://test-bucket/rt/size1 "$dir/x" 2>>"$dir/stats" || fail "get through a stalling proxy"
	cmp "$dir/size1" "$dir/x" || fail "get through a stalling proxy differs"
done
retries=$(sed -n 's/.*retries=\([0-9]*\).*/\1/p' "$dir/stats" | paste -sd+ | bc)
[ "$retries" -gt 0 ] || fail "no retries through the stalling proxy: $(cat "$dir/stats")"
# A body damaged in flight (the proxy inverts its first byte, the signed
# head unchanged): the store checks the body against the signed
# x-amz-content-sha256 and refuses it, nothing is stored under the key,
# with and without If-None-Match and with retention (Content-MD5 too).
start_proxy --fail 0 --flip-body /flipped
for args in "test-bucket/flipped/a" "test-bucket/flipped/b --if-none-match" \
	"lock-bucket/flipped/c --retain-until $((now + 3600))"; do
	set -- $args
	expect_err EIO S --endpoint "http://127.0.0.1:$(cat "$dir/proxy.port")" --retries 1 \
		put "s3://$1" "$dir/size1m" "${@:2}"
	grep -q "HTTP 400 \(XAmzContentSHA256Mismatch\|BadDigest\)" "$dir/err" ||
		fail "a body damaged in flight: $(cat "$dir/err")"
	expect_err ENOENT S head "s3://$1"
done
kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=
grep -q 'flipped=3$' "$dir/proxy.err" || fail "the proxy damaged $(cat "$dir/proxy.err"), not 3 bodies"

# Nothing listening: connection refused, retried, then a clear error.
port=$(ceph_free_port)
expect_err EIO S --endpoint "http://127.0.0.1:$port" --retries 2 head s3://test-bucket/rt/size1
grep -q "after 3 attempts" "$dir/err" || fail "connection refused: $(cat "$dir/err")"

# A wrong secret key: a clear 403, not retried.
expect_err EACCES S --secret wrong-secret get s3://test-bucket/rt/size1 "$dir/x"
grep -q "HTTP 403 SignatureDoesNotMatch" "$dir/err" || fail "wrong secret: $(cat "$dir/err")"
echo "ok"
