# Sourced by the S3 backup tests (not a test itself: no .sh): the test
# library, a single-node Ceph with radosgw, the tools, and flaky-proxy in
# front of radosgw.  Sets T (vhdtool), P (s3probe), PROXY, M, TO.
. "$(dirname "$0")/../lib.bash"
. "$(dirname "$0")/../ceph-cluster.bash"
T=${VHDTOOL:?}
B=${BUILD:-build}
P=$B/tests/tools/s3probe
PROXY=$B/tests/tools/flaky-proxy
requires python3
[ -x "$P" ] && [ -x "$PROXY" ] || fail "$P / $PROXY not built"
fail_show "$dir/err"
bgpid=
proxy_pid=
stop_bg() {
	[ -z "$bgpid" ] || { kill "$bgpid" 2>/dev/null; wait "$bgpid" 2>/dev/null; }
	stop_proxy
}
at_exit stop_bg
M=$((1 << 20))
TO() { timeout -k 5 300 "$@"; }

# proxy ARGS...: flaky-proxy (no random failure unless ARGS say so) in
# front of radosgw; PX: the options that send vhdtool through it, with
# PROXY_RETRIES (default 1) retries.
proxy() {
	stop_proxy
	"$PROXY" --fail 0 --lifetime 280 "$@" "${AWS_ENDPOINT_URL#http://}" >"$dir/proxy.port" 2>"$dir/proxy.err" &
	proxy_pid=$!
	for _ in $(seq 50); do [ -s "$dir/proxy.port" ] && break; sleep 0.1; done
	[ -s "$dir/proxy.port" ] || fail "flaky-proxy did not start: $(cat "$dir/proxy.err")"
	PX=(--s3-endpoint "http://127.0.0.1:$(cat "$dir/proxy.port")" --s3-retries "${PROXY_RETRIES:-1}")
}
stop_proxy() {
	[ -z "$proxy_pid" ] || { kill "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null; }
	proxy_pid=
}

ceph_cluster_start "$dir/ceph"
ceph_rgw_start
