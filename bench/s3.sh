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
# A third row, "store ceiling", is the store alone in the same rounds:
# tests/tools/s3probe putmany uploading as many 4 MiB objects of random
# data as the disk has non-zero chunks (and as the change has), from
# $CONNECTIONS threads, no hashing or reading of a disk: what any client
# needs at least for those bytes on this store and machine; for the
# restore (of the incremental, to a new file), s3probe getmany reading
# the full's objects back (data dropped).
#
#   bench/s3.sh                      (make bench runs it)
#   SIZE_MIB=256 ROUNDS=1 bench/s3.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
T=${VHDTOOL:-$(pwd)/build/vhdtool}
S3PROBE=${S3PROBE:-$(dirname "$T")/tests/tools/s3probe}
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
[ -x "$S3PROBE" ] || { echo "bench/s3.sh: $S3PROBE not built (make): skipped" >&2; exit 0; }
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

run_tool() {   # TOOL ROUND: prints "full incr restore" (seconds)
	local tool=$1 b="bench-$1-$2" t0 t1 t2 t3 t4 t5
	local n=$((nchunks / 2)) k=0
	case $tool in
	vhdtool) "$T" backup init "s3://$b/repo" ;;
	restic) restic init -q -r "s3:$AWS_ENDPOINT_URL/$b/repo" >/dev/null ;;
	store) "$S3PROBE" mb "s3://$b" ;;
	esac || { echo "bench: $tool init failed" >&2; exit 1; }
	one() {
		case $tool in
		vhdtool) "$T" backup create --connections "$CONNECTIONS" "s3://$b/repo" "$disk" >/dev/null 2>&1 ;;
		restic) restic -q -r "s3:$AWS_ENDPOINT_URL/$b/repo" -o s3.connections="$CONNECTIONS" backup "$disk" >/dev/null ;;
		# the first time the disk's random half, then the change
		store) "$S3PROBE" --connections "$CONNECTIONS" putmany "s3://$b/o$k-" "$n" \
			--threads "$CONNECTIONS" --size $((4 * M)) && k=$((k + 1)) n=$changed ;;
		esac || { echo "bench: $tool backup failed" >&2; exit 1; }
	}
	# restore of the latest (the incremental) backup to a new file
	back() {
		rm -rf "$work/restored"
		case $tool in
		vhdtool) "$T" backup restore --connections "$CONNECTIONS" "s3://$b/repo" latest "$work/restored" >/dev/null 2>&1 ;;
		restic) restic -q -r "s3:$AWS_ENDPOINT_URL/$b/repo" -o s3.connections="$CONNECTIONS" restore latest --target "$work/restored" >/dev/null ;;
		# the same bytes back: every object the uploads made
		store) "$S3PROBE" --connections "$CONNECTIONS" getmany "s3://$b/o0-" $((nchunks / 2)) --threads "$CONNECTIONS" ;;
		esac || { echo "bench: $tool restore failed" >&2; exit 1; }
	}
	t0=$(now); one; t1=$(now)
	apply "$work/new.bin"
	t2=$(now); one; t3=$(now)
	t4=$(now); back; t5=$(now)
	# Timing a restore that gives other bytes would mean nothing.
	case $tool in
	vhdtool) cmp -s "$work/restored" "$disk" ;;
	restic) cmp -s "$work/restored$disk" "$disk" ;;
	esac || { echo "bench: $tool restored other bytes" >&2; exit 1; }
	rm -rf "$work/restored"
	apply "$work/orig.bin"
	# The OSD keeps it all in memory: the round's bucket goes, server side.
	ceph_t 120 radosgw-admin bucket rm --bucket="$b" --purge-objects >/dev/null 2>&1 ||
		echo "bench: could not remove bucket $b (memory)" >&2
	echo "$(secs "$t0" "$t1") $(secs "$t2" "$t3") $(secs "$t4" "$t5")"
}

for r in $(seq 1 "$ROUNDS"); do
	for tool in vhdtool restic store; do
		res=$(run_tool "$tool" "$r") || exit 1
		echo "$tool $res" >>"$work/results"
		echo "round $r: $tool: full/incremental/restore = $res" >&2
	done
done
med() { awk -v t="$1" -v f="$2" '$1 == t { print $f }' "$work/results" | median; }
echo
echo "S3 backup of a ${SIZE_MIB} MiB raw disk (half random, half zeros) to radosgw on 127.0.0.1, change $changed of $nchunks 4 MiB chunks; $CONNECTIONS connections; median of $ROUNDS interleaved rounds; $(nproc) CPUs"
echo
echo "| tool | full backup | incremental | restore of the incremental |"
echo "| --- | ---: | ---: | ---: |"
for tool in vhdtool restic store; do
	printf '| %s | %.2f s | %.2f s | %.2f s |\n' "${tool/store/store ceiling (s3probe putmany, getmany)}" \
		"$(med "$tool" 2)" "$(med "$tool" 3)" "$(med "$tool" 4)"
done
printf 'vhdtool vs restic (S3): full %.1fx faster, incremental %.1fx faster, restore %.1fx faster\n' \
	"$(echo "$(med restic 2) / $(med vhdtool 2)" | bc -l)" \
	"$(echo "$(med restic 3) / $(med vhdtool 3)" | bc -l)" \
	"$(echo "$(med restic 4) / $(med vhdtool 4)" | bc -l)"
printf 'restic vs the store ceiling: full %.1fx the ceiling (the most any client can beat restic by), incremental %.1fx\n' \
	"$(echo "$(med restic 2) / $(med store 2)" | bc -l)" \
	"$(echo "$(med restic 3) / $(med store 3)" | bc -l)"
echo "versions: $(restic version | cut -d' ' -f1-2); $(radosgw --version 2>/dev/null | head -1 | cut -d' ' -f1-3)"
