#!/bin/bash
# Change tracking is invalidated when the image changes behind its back:
#  - qemu-io writes into the VHD: the next backup is full (reads every data
#    chunk), says why, and restores qemu's bytes;
#  - dd writes into a raw image without changing its size or mtime order;
#  - a vhdtool writer is killed with SIGKILL while it holds the image open.
# After each, the next tracked write gives an incremental again.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires qemu-io python3
pids=
at_exit 'for p in $pids; do kill -9 $p 2>/dev/null; done'
M=$((1 << 20))
repo=$dir/repo

. "$(dirname "$0")/bkp-common.bash"
backup() {   # SRC -> prints the ID
	$T backup create "$repo" "$1" 2>"$dir/err" || fail "create $1: $(cat "$dir/err")"
}
restores() {   # ID SRC
	$T backup restore -O raw "$repo" "$1" "$dir/out.raw" || fail "restore $1"
	$T read "$2" 0 "$(stat -c %s "$dir/out.raw")" | cmp - "$dir/out.raw" ||
		fail "restore of $1 differs from $2"
	rm -f "$dir/out.raw"
}

$T backup init "$repo" || fail init

# ---- qemu-io on a dynamic VHD ----
img=$dir/dyn.vhd
$T create "$img" 32M >/dev/null || fail create
head -c $((12 * M)) /dev/urandom | $T write "$img" 0 || fail fill
id=$(backup "$img"); expect "$id" full 3 "first backup"
[ -f "$img.ctk" ] || fail "no $img.ctk after the first backup"
printf 'tracked' | $T write "$img" 5M || fail write
id=$(backup "$img"); expect "$id" incremental 1
qemu-io -f vpc -c 'write -P 0x61 9M 4k' "$img" >/dev/null || fail qemu-io
id=$(backup "$img"); expect "$id" full 3 "modified outside vhdstack"
restores "$id" "$img"
[ "$($T read "$img" 9M 4)" = aaaa ] || fail "qemu's bytes not in the image"
id=$(backup "$img"); expect "$id" incremental 0
printf 'tracked again' | $T write "$img" 1M || fail write
id=$(backup "$img"); expect "$id" incremental 1
restores "$id" "$img"
echo "qemu-io: invalidated, full backup, then incremental again"

# ---- dd on a raw image (same size) ----
raw=$dir/disk.raw
head -c $((16 * M)) /dev/urandom >"$raw"
id=$(backup "$raw"); expect "$id" full 4
printf 'x' | $T write "$raw" 0 || fail write
id=$(backup "$raw"); expect "$id" incremental 1
printf 'dd' | dd of="$raw" bs=1 seek=$((13 * M)) conv=notrunc status=none || fail dd
id=$(backup "$raw"); expect "$id" full 4 "modified outside vhdstack"
restores "$id" "$raw"
echo "dd: invalidated"

# ---- a writer killed while it holds the image ----
# The writer opens the image (marking the tracking file open) and then
# waits for standard input (a fifo we hold open) that never ends.
mkfifo "$dir/fifo" || fail mkfifo
$T write "$img" 2M <"$dir/fifo" &
wpid=$!
pids="$wpid"
exec 3>"$dir/fifo"
for i in $(seq 1 200); do
	state=$(od -An -tu4 -j16 -N4 "$img.ctk" | tr -d ' ')
	[ "$state" = 2 ] && break
	sleep 0.05
done
[ "$state" = 2 ] || fail "writer did not mark the tracking file open (state $state)"
# The writer holds it: reading it needs -U (its reader lock would be
# refused); the backup is full and records no tracking.
id_busy=$(T="$T -U"; backup "$img")
expect "$id_busy" full 3 "held by a process writing"
[ "$(jget "$id_busy" change-tracking)" = null ] || fail "busy backup recorded tracking"
{ kill -9 "$wpid"; wait "$wpid"; } 2>/dev/null
exec 3>&-
id=$(backup "$img"); expect "$id" full 3 "did not close it cleanly"
printf 'after crash' | $T write "$img" 30M || fail write
id=$(backup "$img"); expect "$id" incremental 1
restores "$id" "$img"
echo "killed writer: invalidated"

$T backup verify "$repo" >/dev/null || fail "verify"
echo ok
