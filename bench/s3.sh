#!/bin/bash
# S3 backup benchmark: vhdtool backup to s3://BUCKET/PREFIX vs restic's S3
# backend (`restic -r s3:http://...`), both to the same radosgw (a
# throw-away single-node Ceph from tests/ceph-cluster.bash, OSD in memory),
# on a raw disk of SIZE_MIB (default 2048: first half random, second half
# zeros, as bench/backup.sh) and a 10% change (every 10th aligned 4 MiB
# chunk, written through `vhdtool write` so change tracking records it).
#
# ROUNDS (default 3) interleaved rounds, tool by tool: a fresh bucket, a
# full backup, the change, an incremental backup, the change undone.
# Medians as a Markdown table, and the ratios.  Skips (exit 0 with a
# message) when radosgw or restic is missing.
#
#   bench/s3.sh                      (make bench runs it)
#   SIZE_MIB=256 ROUNDS=1 bench/s3.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
T=${VHDTOOL:-$(pwd)/build/vhdtool}
SIZE_MIB=${SIZE_MIB:-2048}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
M=$((1 << 20))
. "$here/lib.bash"
. "$here/../tests/ceph-cluster.bash"
work=$(mktemp -d "${BENCH_DIR:-/tmp}/vhdstack-bench-s3.XXXXXX")
trap 'ceph_cluster_stop; rm -rf "$work"' EXIT
have() { command -v "$1" >/dev/null 2>&1; }
have restic || { echo "bench/s3.sh: restic is not installed: skipped" >&2; exit 0; }
# The OSD keeps everything in memory: room for both tools' repositories.
export CEPH_MEMSTORE_BYTES=${CEPH_MEMSTORE_BYTES:-$(((SIZE_MIB * 3 + 1024) * M))}
# A benchmark that cannot run skips with 0 (make bench goes on).
ceph_skip() { echo "bench/s3.sh: skipped: $*" >&2; exit 0; }
ceph_cluster_start "$work/ceph"
ceph_rgw_start
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/cache/restic

bench_disk
apply() { bench_apply "$1"; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

run_tool() {   # TOOL ROUND: prints "full incr" (seconds)
	local tool=$1 b="bench-$1-$2" t0 t1 t2 t3
	case $tool in
	vhdtool) "$T" backup init "s3://$b/repo" ;;
	restic) restic init -q -r "s3:$AWS_ENDPOINT_URL/$b/repo" >/dev/null ;;
	esac || { echo "bench: $tool init failed" >&2; exit 1; }
	one() {
		case $tool in
		vhdtool) "$T" backup create --connections "$CONNECTIONS" "s3://$b/repo" "$disk" >/dev/null 2>&1 ;;
		restic) restic -q -r "s3:$AWS_ENDPOINT_URL/$b/repo" -o s3.connections="$CONNECTIONS" backup "$disk" >/dev/null ;;
		esac || { echo "bench: $tool backup failed" >&2; exit 1; }
	}
	t0=$(now); one; t1=$(now)
	apply "$work/new.bin"
	t2=$(now); one; t3=$(now)
	apply "$work/orig.bin"
	echo "$(secs "$t0" "$t1") $(secs "$t2" "$t3")"
}

for r in $(seq 1 "$ROUNDS"); do
	for tool in vhdtool restic; do
		res=$(run_tool "$tool" "$r") || exit 1
		echo "$tool $res" >>"$work/results"
		echo "round $r: $tool: full/incremental = $res" >&2
	done
done
med() { awk -v t="$1" -v f="$2" '$1 == t { print $f }' "$work/results" | median; }
echo
echo "S3 backup of a ${SIZE_MIB} MiB raw disk (half random, half zeros) to radosgw on 127.0.0.1, change $changed of $nchunks 4 MiB chunks; $CONNECTIONS connections; median of $ROUNDS interleaved rounds; $(nproc) CPUs"
echo
echo "| tool | full backup | incremental |"
echo "| --- | ---: | ---: |"
for tool in vhdtool restic; do
	printf '| %s | %.2f s | %.2f s |\n' "$tool" "$(med "$tool" 2)" "$(med "$tool" 3)"
done
printf 'vhdtool vs restic (S3): full %.1fx faster, incremental %.1fx faster\n' \
	"$(echo "$(med restic 2) / $(med vhdtool 2)" | bc -l)" \
	"$(echo "$(med restic 3) / $(med vhdtool 3)" | bc -l)"
echo "versions: $(restic version | cut -d' ' -f1-2); $(radosgw --version 2>/dev/null | head -1 | cut -d' ' -f1-3)"
