#!/bin/bash
# The S3 client against a misbehaving server (a small python3 HTTP server,
# no radosgw): a server that answers every listing page "truncated" with
# the same continuation token must make the listing fail with "listing did
# not advance" after the second page, not loop forever; one whose
# continuation token is longer than a request URL may carry fails the
# listing with a clear error after its first page; a long one that fits
# is sent whole (never cut).  And the client's timeout bounds a stall, not
# a transfer: a GET taking 5 s at 32 KiB/s passes --timeout-ms 3000.
set -eu
B=${BUILD:-build}
P=$B/tests/tools/s3probe
. "$(dirname "$0")/../lib.bash"
requires python3
[ -x "$P" ] || skip "$P not built"
srv_pid=
at_exit '[ -z "$srv_pid" ] || { kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; }'

start_server() {   # $1: the continuation token every page names
	cat >"$dir/srv.py" <<'PY'
import http.server, sys, time
token = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[2], "a") as log:
            log.write(self.path + "\n")
        if self.path.startswith("/bkt/slow"):
            # 160 KiB at 32 KiB/s: a slow transfer that keeps moving
            self.send_response(200)
            self.send_header("Content-Length", str(160 * 1024))
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"s" * 16384)
                self.wfile.flush()
                time.sleep(0.5)
            return
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount>'
                '<IsTruncated>true</IsTruncated>'
                '<NextContinuationToken>%s</NextContinuationToken>'
                '<Contents><Key>k</Key><Size>1</Size>'
                '<LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>'
                '</ListBucketResult>\n' % token).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.timeout = 1
import time
end = time.time() + 120
while time.time() < end:
    s.handle_request()
PY
	: >"$dir/requests"
	python3 "$dir/srv.py" "$1" "$dir/requests" >"$dir/port" &
	srv_pid=$!
	for _ in $(seq 50); do [ -s "$dir/port" ] && break; sleep 0.1; done
	[ -s "$dir/port" ] || fail "the fake server did not start"
}
stop_server() { kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null || true; srv_pid=; }
# list_fails TOKEN: list against a server naming TOKEN on every page; the
# listing must fail (exit 1, not the timeout's 124); stderr in $dir/err.
list_fails() {
	local rc=0

	start_server "$1"
	timeout -k 5 60 "$P" --endpoint "http://127.0.0.1:$(cat "$dir/port")" --retries 0 \
		list s3://bkt/ >"$dir/out" 2>"$dir/err" || rc=$?
	stop_server
	[ "$rc" = 1 ] || fail "the listing ended with $rc (124: it looped): $(cat "$dir/err")"
}

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL_S3 AWS_PROFILE AWS_DEFAULT_PROFILE
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null   # not the user's ~/.aws
export XDG_CACHE_HOME=$dir/xdg-cache   # nor ~/.cache

# ---- the same token on every page ----
list_fails "same-token"
grep -q "listing did not advance" "$dir/err" || fail "no 'did not advance': $(cat "$dir/err")"
[ "$(wc -l <"$dir/requests")" = 2 ] || fail "pages asked: $(wc -l <"$dir/requests"), not 2"

# ---- a long token (1400 '%', 4200 bytes encoded) goes out whole ----
list_fails "$(head -c 1400 /dev/zero | tr '\0' '%')"
grep -q "listing did not advance" "$dir/err" || fail "no 'did not advance': $(cat "$dir/err")"
[ "$(sed -n 2p "$dir/requests" | grep -o '%25' | wc -l)" = 1400 ] ||
	fail "the long token was not sent whole: $(sed -n 2p "$dir/requests" | wc -c) bytes"

# ---- a token no request URL can carry: an error after one page ----
list_fails "$(head -c 4000 /dev/zero | tr '\0' '%')"
grep -q "too long" "$dir/err" || fail "no 'too long': $(cat "$dir/err")"
[ "$(wc -l <"$dir/requests")" = 1 ] || fail "pages asked: $(wc -l <"$dir/requests"), not 1"

# ---- a slow transfer that keeps moving outlasts --timeout-ms: not cut ----
# (5 s at 32 times the 1 KiB/s stall floor, against a 3 s stall bound)
start_server "unused"
timeout -k 5 60 "$P" --endpoint "http://127.0.0.1:$(cat "$dir/port")" --retries 0 --timeout-ms 3000 \
	get s3://bkt/slow "$dir/slow" 2>"$dir/err" || fail "a slow but moving GET failed: $(cat "$dir/err")"
stop_server
[ "$(stat -c %s "$dir/slow")" = $((160 * 1024)) ] || fail "the slow GET got $(stat -c %s "$dir/slow") bytes"
echo ok
