#!/bin/bash
# Listing the backups of an S3 repository over a distant link: `vhdtool
# backup list` vs `restic snapshots`, each with no cache and with its
# local cache warm (vhdtool: the manifest cache, ~/.cache/vhdtool;
# restic: its cache of snapshot files).  N backups of a small disk (one
# byte changed each time) are made with each tool straight to radosgw (a
# throw-away single node, tests/ceph-cluster.bash); the listings then go
# through tests/tools/flaky-proxy --delay DELAY_MS (default 20: every
# request held that long, a store some distance away) with no failures.
#
# ROUNDS (default 3) interleaved rounds, medians as a Markdown table.
# Skips (exit 0 with a message) when radosgw or restic is missing.
#
#   bench/s3-list.sh                       (make bench runs it)
#   N=200 DELAY_MS=40 bench/s3-list.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
T=${VHDTOOL:-$(pwd)/build/vhdtool}
PROXY=${PROXY:-$(dirname "$T")/tests/tools/flaky-proxy}
N=${N:-100}
DELAY_MS=${DELAY_MS:-20}
ROUNDS=${ROUNDS:-3}
. "$here/lib.bash"
. "$here/../tests/ceph-cluster.bash"
work=$(mktemp -d "${BENCH_DIR:-/tmp}/vhdstack-bench-s3list.XXXXXX")
proxy_pid=
trap '[ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null; ceph_cluster_stop; rm -rf "$work"' EXIT
have() { command -v "$1" >/dev/null 2>&1; }
have restic || { echo "bench/s3-list.sh: restic is not installed: skipped" >&2; exit 0; }
[ -x "$PROXY" ] || { echo "bench/s3-list.sh: $PROXY not built (make): skipped" >&2; exit 0; }
ceph_skip() { echo "bench/s3-list.sh: skipped: $*" >&2; exit 0; }
ceph_cluster_start "$work/ceph"
ceph_rgw_start
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache
VCACHE=$work/vhdtool-cache

disk=$work/disk.raw
head -c $((1 << 20)) /dev/urandom >"$disk"
"$T" backup init s3://bl-vhd/repo || exit 1
restic init -q -r "s3:$AWS_ENDPOINT_URL/bl-restic/repo" >/dev/null || exit 1
for i in $(seq 1 "$N"); do
	printf '%08d' "$i" | dd of="$disk" conv=notrunc status=none
	"$T" backup create --no-cache s3://bl-vhd/repo "$disk" >/dev/null 2>&1 ||
		{ echo "bench: vhdtool backup $i failed" >&2; exit 1; }
	restic -q -r "s3:$AWS_ENDPOINT_URL/bl-restic/repo" backup "$disk" >/dev/null ||
		{ echo "bench: restic backup $i failed" >&2; exit 1; }
done
rm -rf "$RESTIC_CACHE_DIR"

"$PROXY" --fail 0 --delay "$DELAY_MS" --lifetime 3600 "${AWS_ENDPOINT_URL#http://}" \
	>"$work/proxy.port" 2>"$work/proxy.err" &
proxy_pid=$!
for _ in $(seq 50); do [ -s "$work/proxy.port" ] && break; sleep 0.1; done
[ -s "$work/proxy.port" ] || { echo "bench: flaky-proxy did not start" >&2; exit 1; }
PURL=http://127.0.0.1:$(cat "$work/proxy.port")

now() { date +%s.%N; }
v_vhd_nocache() { timed vhd_nocache "$T" backup list --no-cache --s3-endpoint "$PURL" s3://bl-vhd/repo; }
v_vhd_cache() { timed vhd_cache "$T" backup list --cache-dir "$VCACHE" --s3-endpoint "$PURL" s3://bl-vhd/repo; }
v_restic_nocache() { timed restic_nocache restic --no-cache -r "s3:$PURL/bl-restic/repo" snapshots; }
v_restic_cache() { timed restic_cache restic -r "s3:$PURL/bl-restic/repo" snapshots; }
# Warm both caches first (not timed: a first listing fills them).
"$T" backup list --cache-dir "$VCACHE" --s3-endpoint "$PURL" s3://bl-vhd/repo >/dev/null 2>&1 || exit 1
restic -r "s3:$PURL/bl-restic/repo" snapshots >/dev/null || exit 1
: >"$work/results"
# timed NAME COMMAND...: the seconds into results; the listing must name
# all N backups (vhdtool's lines start with the ID's year, restic's
# snapshot lines with an 8-hex short ID).
timed() {
	local t0 t1 n pat
	case $1 in vhd_*) pat='^20[0-9][0-9]' ;; *) pat='^[0-9a-f]\{8\} ' ;; esac
	t0=$(now)
	"${@:2}" >"$work/out" 2>"$work/err" || { echo "bench: $1 failed: $(tail -2 "$work/err")" >&2; exit 1; }
	t1=$(now)
	n=$(grep -c "$pat" "$work/out")
	[ "$n" -ge "$N" ] || { echo "bench: $1 listed $n of $N: $(head -3 "$work/out")" >&2; exit 1; }
	echo "$1 $(echo "$t1 - $t0" | bc)" >>"$work/results"
}
interleave "$ROUNDS" "vhd_nocache restic_nocache" "vhd_cache restic_cache" >&2
med() { awk -v t="$1" '$1 == t { print $2 }' "$work/results" | median; }
echo
echo "Listing $N backups on S3 (radosgw on 127.0.0.1 behind a proxy holding every request $DELAY_MS ms); median of $ROUNDS interleaved rounds; $(nproc) CPUs"
echo
echo "| tool | no cache | warm cache |"
echo "| --- | ---: | ---: |"
printf '| vhdtool backup list | %.2f s | %.2f s |\n' "$(med vhd_nocache)" "$(med vhd_cache)"
printf '| restic snapshots | %.2f s | %.2f s |\n' "$(med restic_nocache)" "$(med restic_cache)"
printf 'vhdtool vs restic: no cache %.1fx faster, warm cache %.1fx faster\n' \
	"$(echo "$(med restic_nocache) / $(med vhd_nocache)" | bc -l)" \
	"$(echo "$(med restic_cache) / $(med vhd_cache)" | bc -l)"
echo "versions: $(restic version | cut -d' ' -f1-2); $(radosgw --version 2>/dev/null | head -1 | cut -d' ' -f1-3)"
