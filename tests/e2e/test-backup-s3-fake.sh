#!/bin/bash
# Backups to a store that ignores If-None-Match, and to one that honours
# it, without radosgw: a small in-memory S3 server in python3 (no
# signature check; bucket HEAD/PUT, object PUT/GET with Range/HEAD/DELETE,
# ListObjectsV2 in one page) that logs every request.
#  - "ignore": a conditional PUT over an existing key replaces it.  The
#    first chunk stored probes the store (a scratch key put twice), finds
#    it ignores the header, and from then on every chunk is looked for
#    (HEAD) before its PUT and no object is ever written twice; a second
#    backup of the same data PUTs no chunk; the probe key is deleted.
#  - "honour": 412 over an existing key.  New chunks are PUT without a
#    HEAD first (one request each); a second backup of the same data meets
#    412 for every chunk and HEADs it then; a chunk object cut shorter than
#    a header is still replaced (chunks-replaced).
#  - virtual-host addressing (--s3-addressing virtual): every request goes
#    to BUCKET.localhost:PORT with the key as the whole path (curl resolves
#    *.localhost to the loopback); init, backup, restore, verify.
# Every backup restores to its source's bytes.
set -eu
. "$(dirname "$0")/../lib.bash"
T=${VHDTOOL:?}
B=${BUILD:-build}
P=$B/tests/tools/s3probe
requires python3
[ -x "$P" ] || fail "$P not built"
fail_show "$dir/err"
srv_pid=
at_exit '[ -z "$srv_pid" ] || { kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; }'
M=$((1 << 20))
TO() { timeout -k 5 120 "$@"; }
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null   # not the user's ~/.aws
export XDG_CACHE_HOME=$dir/xdg-cache   # nor ~/.cache

cat >"$dir/srv.py" <<'PY'
# A small in-memory S3 server (no signature check) for the backup engine:
# bucket HEAD/PUT, object PUT/GET (Range)/HEAD/DELETE, ListObjectsV2 in one
# page.  argv[1]: "honour" (If-None-Match: * over an existing key: 412) or
# "ignore" (the header is ignored: the object is replaced); argv[2]: a log
# of "METHOD KEY STATUS" lines, and beside it ARGV[2].style a line a
# request: "path" or "virtual BUCKET" (Host: BUCKET.localhost[:PORT]).
# Prints its port, serves for 300 s at most.
import email.utils, hashlib, http.server, socketserver, sys, threading, time
import urllib.parse
from xml.sax.saxutils import escape
mode, logpath = sys.argv[1], sys.argv[2]
objs, buckets, mu = {}, set(), threading.Lock()
log = open(logpath, "a", buffering=1)
style = open(logpath + ".style", "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def split(self):
        u = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(u.path).lstrip("/")
        host = self.headers.get("Host", "").rsplit(":", 1)[0]
        if host.endswith(".localhost"):
            return host[:-len(".localhost")], path, urllib.parse.parse_qs(u.query), True
        parts = path.split("/", 1)
        return parts[0], parts[1] if len(parts) > 1 else "", urllib.parse.parse_qs(u.query), False
    def answer(self, code, body=b"", hdrs=(), head=False):
        b, k, _, vh = self.split()
        log.write("%s %s %d\n" % (self.command, k, code))
        style.write("virtual %s\n" % b if vh else "path\n")
        self.send_response(code)
        for h, v in hdrs:
            self.send_header(h, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
    def error(self, code, s3code, head=False):
        self.answer(code, ("<?xml version=\"1.0\"?><Error><Code>%s</Code></Error>" % s3code).encode(),
                    [("Content-Type", "application/xml")], head)
    def meta(self, o):
        return [("ETag", '"%s"' % hashlib.md5(o[0]).hexdigest()),
                ("Last-Modified", email.utils.formatdate(o[1], usegmt=True))]
    def do_PUT(self):
        b, k, q, _ = self.split()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with mu:
            if not k:
                buckets.add(b)
                return self.answer(200)
            if b not in buckets:
                return self.error(404, "NoSuchBucket")
            if mode == "honour" and self.headers.get("If-None-Match") == "*" and (b, k) in objs:
                return self.error(412, "PreconditionFailed")
            objs[(b, k)] = (body, time.time())
            return self.answer(200, hdrs=self.meta(objs[(b, k)]))
    def do_HEAD(self):
        b, k, q, _ = self.split()
        with mu:
            if not k:
                return self.answer(200 if b in buckets else 404, head=True)
            o = objs.get((b, k))
            if not o:
                return self.answer(404, head=True)
            self.answer(200, hdrs=self.meta(o) + [("Content-Length-Real", str(len(o[0])))], head=True)
    def send_header(self, h, v):
        if h == "Content-Length-Real":   # a HEAD's length is the object's
            self._real = v
            return
        if h == "Content-Length" and getattr(self, "_real", None) is not None:
            v, self._real = self._real, None
        super().send_header(h, v)
    def do_GET(self):
        b, k, q, _ = self.split()
        with mu:
            if b not in buckets:
                return self.error(404, "NoSuchBucket")
            if not k:
                pre = q.get("prefix", [""])[0]
                rows = "".join("<Contents><Key>%s</Key><Size>%d</Size><LastModified>%s</LastModified></Contents>"
                               % (escape(kk), len(o[0]),
                                  time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(o[1])))
                               for (bb, kk), o in sorted(objs.items()) if bb == b and kk.startswith(pre))
                return self.answer(200, ("<?xml version=\"1.0\"?><ListBucketResult><Name>%s</Name>"
                                         "<IsTruncated>false</IsTruncated>%s</ListBucketResult>" % (b, rows)).encode(),
                                   [("Content-Type", "application/xml")])
            o = objs.get((b, k))
            if not o:
                return self.error(404, "NoSuchKey")
            r = self.headers.get("Range")
            if r and r.startswith("bytes="):
                lo, hi = r[6:].split("-")
                lo, hi = int(lo), min(int(hi) if hi else len(o[0]) - 1, len(o[0]) - 1)
                if lo >= len(o[0]):
                    return self.error(416, "InvalidRange")
                return self.answer(206, o[0][lo:hi + 1], self.meta(o) +
                                   [("Content-Range", "bytes %d-%d/%d" % (lo, hi, len(o[0])))])
            self.answer(200, o[0], self.meta(o))
    def do_DELETE(self):
        b, k, q, _ = self.split()
        with mu:
            objs.pop((b, k), None)
        self.answer(204)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
threading.Timer(300, lambda: s.shutdown()).start()
s.serve_forever()
PY

start_server() {   # MODE: honour | ignore
	: >"$dir/log"
	: >"$dir/log.style"
	python3 "$dir/srv.py" "$1" "$dir/log" >"$dir/port" &
	srv_pid=$!
	for _ in $(seq 50); do [ -s "$dir/port" ] && break; sleep 0.1; done
	[ -s "$dir/port" ] || fail "the fake S3 server did not start"
	E=(--s3-endpoint "http://127.0.0.1:$(cat "$dir/port")" --s3-retries 1)
	S=(--endpoint "http://127.0.0.1:$(cat "$dir/port")" --retries 1)
}
stop_server() { kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null || true; srv_pid=; }
jget() {   # ID KEY
	TO $T backup show "${E[@]}" --output=json s3://fake-bkt/r "$1" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}
backup() {   # a --no-track backup of $dir/d.raw: its id; restored and compared
	local id
	id=$(TO $T backup create "${E[@]}" --no-track --connections 4 s3://fake-bkt/r "$dir/d.raw" 2>"$dir/err") ||
		fail "backup ($mode)"
	TO $T backup restore "${E[@]}" s3://fake-bkt/r "$id" "$dir/out.raw" 2>"$dir/err" || fail "restore ($mode)"
	cmp "$dir/out.raw" "$dir/d.raw" || fail "backup $id ($mode) restores other bytes"
	rm -f "$dir/out.raw"
	echo "$id"
}
# chunk requests of the log from line $1 on: "METHOD KEY STATUS"
chunk_log() { tail -n "+$1" "$dir/log" | grep ' r/chunks/' || true; }

# first_backup MODE PROBE: a server in MODE, init, the first backup (3 new
# chunks, sets id); PROBE: the answers to the probe key's two PUTs.
first_backup() {
	mode=$1
	start_server "$mode"
	TO $T backup init "${E[@]}" s3://fake-bkt/r 2>"$dir/err" || fail "init ($mode)"
	id=$(backup)
	[ "$(jget "$id" chunks-new)" = 3 ] || fail "$mode: $(jget "$id" chunks-new) chunks new, 3 expected"
	grep -E '^PUT r/probe/if-none-match-[0-9a-f]{16} ' "$dir/log" | cut -d' ' -f3 | tr '\n' ' ' >"$dir/probe"
	[ "$(cat "$dir/probe")" = "$2" ] || fail "$mode: the probe's PUTs answered: $(cat "$dir/probe")"
}

# Two different 4 MiB chunks and one repeated twice: 3 chunks to store.
head -c $((8 * M)) /dev/urandom >"$dir/d.raw"
head -c $((4 * M)) /dev/urandom >"$dir/blk"
cat "$dir/blk" "$dir/blk" >>"$dir/d.raw"

# ---- a store that ignores If-None-Match ----
first_backup ignore "200 200 "
grep -qE '^DELETE r/probe/' "$dir/log" || fail "$mode: the probe key was not deleted"
TO $P "${S[@]}" list s3://fake-bkt/r/ | grep -q probe && fail "$mode: a probe key is left"
chunk_log 1 >"$dir/c1"
[ "$(grep -c '^PUT ' "$dir/c1")" = 3 ] || fail "$mode: chunk PUTs: $(grep '^PUT ' "$dir/c1")"
[ "$(grep '^PUT ' "$dir/c1" | cut -d' ' -f2 | sort -u | wc -l)" = 3 ] || fail "$mode: a chunk was written twice"
# every chunk PUT follows a HEAD of its key that found nothing
for k in $(grep '^PUT ' "$dir/c1" | cut -d' ' -f2); do
	grep "^[A-Z]* $k " "$dir/c1" | head -1 | grep -q "^HEAD $k 404$" ||
		fail "$mode: $k was PUT without a HEAD first: $(grep " $k " "$dir/c1" | tr '\n' ';')"
done
# put-once metadata is looked for first too (the manifest is never replaced)
grep -B1 -E '^PUT r/backups/[^ ]*\.json ' "$dir/log" | head -1 | grep -q '^HEAD r/backups/' ||
	fail "$mode: the manifest was PUT without a HEAD first"
# the same data again: no chunk PUT at all
n=$(($(wc -l <"$dir/log") + 1))
id2=$(backup)
[ "$(jget "$id2" chunks-new)" = 0 ] || fail "$mode: second backup stored $(jget "$id2" chunks-new) chunks"
chunk_log "$n" | grep -q '^PUT ' && fail "$mode: the second backup PUT chunks: $(chunk_log "$n" | grep '^PUT ')"
stop_server

# ---- a store that honours If-None-Match ----
first_backup honour "200 412 "
chunk_log 1 >"$dir/c1"
# every chunk's first request is its PUT (no HEAD before), stored once;
# the repeated chunk is PUT once: the second thread waits for the first
for k in $(grep '^PUT ' "$dir/c1" | cut -d' ' -f2 | sort -u); do
	grep " $k " "$dir/c1" | head -1 | grep -q "^PUT $k 200$" ||
		fail "$mode: $k: $(grep " $k " "$dir/c1" | tr '\n' ';')"
done
[ "$(grep -c '^PUT .* 200$' "$dir/c1")" = 3 ] || fail "$mode: chunk PUTs: $(grep '^PUT ' "$dir/c1" | tr '\n' ';')"
# the same data again: 412 for each chunk PUT sent blind, then a HEAD
n=$(($(wc -l <"$dir/log") + 1))
id2=$(backup)
[ "$(jget "$id2" chunks-new)" = 0 ] || fail "$mode: second backup stored $(jget "$id2" chunks-new) chunks"
chunk_log "$n" | grep -q '^PUT .* 200$' && fail "$mode: the second backup replaced a chunk"
# a chunk object cut shorter than a header: replaced by the next backup
k=$(grep '^PUT .* 200$' "$dir/c1" | head -1 | cut -d' ' -f2)
TO $P "${S[@]}" delete "s3://fake-bkt/$k" && printf 'short' | TO $P "${S[@]}" put "s3://fake-bkt/$k" - ||
	fail "truncate $k"
id3=$(backup)
[ "$(jget "$id3" chunks-replaced)" = 1 ] || fail "$mode: chunks-replaced $(jget "$id3" chunks-replaced), 1 expected"
[ "$(TO $P "${S[@]}" head "s3://fake-bkt/$k" | cut -d' ' -f1)" -gt 24 ] || fail "$mode: $k still short"
# Duplicates come in runs: a disk of 20 new chunks, then a copy of it (no
# base to build on: --no-track) with one connection: one PUT meets a 412,
# the other 19 chunks are looked for (HEAD), not uploaded for a 412 each.
head -c $((80 * M)) /dev/urandom >"$dir/big.raw"
TO $T backup create "${E[@]}" --no-track --connections 1 s3://fake-bkt/r "$dir/big.raw" >/dev/null 2>"$dir/err" ||
	fail "$mode: backup of big.raw"
cp "$dir/big.raw" "$dir/copy.raw"
n=$(($(wc -l <"$dir/log") + 1))
TO $T backup create "${E[@]}" --no-track --connections 1 s3://fake-bkt/r "$dir/copy.raw" >/dev/null 2>"$dir/err" ||
	fail "$mode: backup of its copy"
blind=$(chunk_log "$n" | grep -c '^PUT .* 412$')
found=$(chunk_log "$n" | grep -c '^HEAD .* 200$')
[ "$blind" = 1 ] && [ "$found" -ge 19 ] ||
	fail "$mode: a copy of a backed-up disk: $blind chunk uploads met a 412 and $found HEADs found chunks (1 and 19 expected)"
[ "$(sort -u "$dir/log.style")" = path ] || fail "$mode: not every request was path-style"
# five backups: list reads their manifests on several threads; the same
# list as one thread reads
TO $T backup list "${E[@]}" s3://fake-bkt/r >"$dir/l4" 2>"$dir/err" || fail "list: $(cat "$dir/err")"
TO $T backup list "${E[@]}" --connections 1 s3://fake-bkt/r >"$dir/l1" 2>"$dir/err" || fail "list: $(cat "$dir/err")"
[ "$(wc -l <"$dir/l1")" = 6 ] || fail "list: $(cat "$dir/l1")"
cmp -s "$dir/l4" "$dir/l1" || fail "lists differ: $(diff "$dir/l1" "$dir/l4")"
stop_server

# ---- virtual-host addressing ----
mode=virtual
start_server honour
E=(--s3-endpoint "http://localhost:$(cat "$dir/port")" --s3-retries 1 --s3-addressing virtual)
TO $T backup init "${E[@]}" s3://fake-bkt/r 2>"$dir/err" || fail "init ($mode)"
id=$(backup)
[ "$(jget "$id" chunks-new)" = 3 ] || fail "$mode: $(jget "$id" chunks-new) chunks new, 3 expected"
TO $T backup verify "${E[@]}" s3://fake-bkt/r >"$dir/v" 2>&1 || fail "verify ($mode): $(cat "$dir/v")"
[ "$(wc -l <"$dir/log.style")" -gt 10 ] || fail "$mode: only $(wc -l <"$dir/log.style") requests"
[ "$(sort -u "$dir/log.style")" = "virtual fake-bkt" ] ||
	fail "$mode: requests not addressed as fake-bkt.localhost: $(sort "$dir/log.style" | uniq -c | tr '\n' ';')"
grep -q '^PUT r/backups/.*\.json 200$' "$dir/log" || fail "$mode: no manifest stored under its key: $(tail -5 "$dir/log")"
TO $T backup list "${E[@]}" --s3-addressing bogus s3://fake-bkt/r >/dev/null 2>"$dir/err" &&
	fail "--s3-addressing bogus accepted"
grep -q -- '--s3-addressing: path or virtual' "$dir/err" || fail "--s3-addressing bogus: $(cat "$dir/err")"
stop_server
echo ok
