#!/bin/bash
# Backup benchmark: vhdtool backup vs restic and borg (lz4 and zlib,1), on
# a raw disk of SIZE_MIB (default 2048: the first half random, the second
# half written zeros) and a 10% change (every 10th aligned 4 MiB chunk,
# 51 of 512 for 2 GiB, overwritten with new random data through
# `vhdtool write`, so vhdtool's change tracking records it).
#
# For each tool, ROUNDS times (default 3), interleaved tool by tool: a
# fresh repository, a full backup, the change, an incremental backup, the
# repository growth, a restore of the incremental to a file (checked
# against the disk), and the change undone.  Medians are printed as a
# Markdown table.  Peers that are missing are installed with apt-get when
# running as root, else skipped.
#
#   bench/backup.sh                  (make bench runs it)
#   SIZE_MIB=512 ROUNDS=1 bench/backup.sh
set -u
. "$(dirname "$0")/lib.bash"
T=${VHDTOOL:-$(pwd)/build/vhdtool}
SIZE_MIB=${SIZE_MIB:-2048}
ROUNDS=${ROUNDS:-3}
M=$((1 << 20))
work=$(mktemp -d "${BENCH_DIR:-/tmp}/vhdstack-bench-backup.XXXXXX")
trap 'rm -rf "$work"' EXIT
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/cache/restic
export BORG_BASE_DIR=$work/cache/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

have() { command -v "$1" >/dev/null 2>&1; }
if ! have restic || ! have borg; then
	if [ "$(id -u)" = 0 ] && have apt-get; then
		echo "bench: installing restic and borgbackup (Debian)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup >/dev/null 2>&1 ||
			echo "bench: apt-get install failed; missing peers are skipped" >&2
	fi
fi
tools="vhdtool"
have restic && tools="$tools restic" || echo "bench: restic not installed: skipped" >&2
have borg && tools="$tools borg-lz4 borg-zlib1" || echo "bench: borg not installed: skipped" >&2

bench_disk
apply() { bench_apply "$1"; }
sum_orig=$(sha256sum "$disk" | cut -c1-64)

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
bytes() { du -sb "$1" | cut -f1; }

# One round of one tool: prints "full incr growth restore" (s s bytes s).
run_tool() {
	local tool=$1 repo=$work/repo out=$work/out t0 t1 t2 t3 t4 t5 g0 g1
	rm -rf "$repo" "$out" "$work/cache"
	mkdir -p "$out"
	case $tool in
	vhdtool) "$T" backup init "$repo" ;;
	restic) restic init -q -r "$repo" >/dev/null ;;
	borg-*) borg init -e none "$repo" ;;
	esac || { echo "bench: $tool init failed" >&2; exit 1; }
	full() {
		case $tool in
		vhdtool) "$T" backup create "$repo" "$disk" >/dev/null 2>&1 ;;
		restic) restic -q -r "$repo" backup "$disk" >/dev/null ;;
		borg-lz4) borg create --compression lz4 "$repo::b$1" "$disk" ;;
		borg-zlib1) borg create --compression zlib,1 "$repo::b$1" "$disk" ;;
		esac || { echo "bench: $tool backup failed" >&2; exit 1; }
	}
	sync
	t0=$(now); full 1; t1=$(now)
	apply "$work/new.bin"
	sync
	g0=$(bytes "$repo")
	t2=$(now); full 2; t3=$(now)
	g1=$(bytes "$repo")
	sync
	t4=$(now)
	case $tool in
	vhdtool) "$T" backup restore -O raw "$repo" latest "$out/disk.raw" ;;
	restic) restic -q -r "$repo" restore latest --target "$out" >/dev/null ;;
	borg-*) (cd "$out" && borg extract "$repo::b2") ;;
	esac || { echo "bench: $tool restore failed" >&2; exit 1; }
	t5=$(now)
	restored=$(find "$out" -type f -name disk.raw)
	cmp -s "$restored" "$disk" || { echo "bench: $tool restored different bytes" >&2; exit 1; }
	apply "$work/orig.bin"
	echo "$(secs "$t0" "$t1") $(secs "$t2" "$t3") $((g1 - g0)) $(secs "$t4" "$t5")"
}

for r in $(seq 1 "$ROUNDS"); do
	for tool in $tools; do
		res=$(run_tool "$tool") || exit 1
		echo "$tool $res" >>"$work/results"
		echo "round $r: $tool: full/incremental/growth/restore = $res" >&2
	done
done
[ "$(sha256sum "$disk" | cut -c1-64)" = "$sum_orig" ] || { echo "bench: disk not restored" >&2; exit 1; }

median() {   # TOOL FIELD
	awk -v t="$1" -v f="$2" '$1 == t { print $f }' "$work/results" | sort -g |
		awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
chg=$((changed * 4 * M))
size=$((SIZE_MIB * M))
echo
echo "Backup of a ${SIZE_MIB} MiB raw disk (half random, half zeros), change $changed of $nchunks 4 MiB chunks ($((chg / M)) MiB); median of $ROUNDS interleaved rounds; $(nproc) CPUs"
echo
echo "| tool | full backup | incremental | incr / full | repo growth / changed bytes | restore | restore GB/s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for tool in $tools; do
	f=$(median "$tool" 2) i=$(median "$tool" 3) g=$(median "$tool" 4) rs=$(median "$tool" 5)
	printf '| %s | %.2f s | %.2f s | %.0f%% | %.2fx | %.2f s | %.2f |\n' "$tool" "$f" "$i" \
		"$(echo "100 * $i / $f" | bc -l)" "$(echo "$g / $chg" | bc -l)" "$rs" \
		"$(echo "$size / $rs / 1000000000" | bc -l)"
done
fv=$(median vhdtool 2)
for tool in $tools; do
	[ "$tool" = vhdtool ] && continue
	printf 'full backup: vhdtool %.1fx faster than %s; restore: %.1fx\n' \
		"$(echo "$(median "$tool" 2) / $fv" | bc -l)" "$tool" \
		"$(echo "$(median "$tool" 5) / $(median vhdtool 5)" | bc -l)"
done
echo
echo "versions: $("$T" --help >/dev/null 2>&1 && echo vhdtool); $(have restic && restic version | cut -d' ' -f1-2); $(have borg && borg --version)"
