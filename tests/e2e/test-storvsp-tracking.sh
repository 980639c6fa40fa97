#!/bin/bash
# A disk the storage VSP wrote stays incrementally backed up.  For a
# dynamic VHD and a raw file (pass-through) with a tracking file: a first
# backup (full, creates IMAGE.ctk), then `vmm-mini host` serves the disk
# and a guest-side client (storvsc-client) writes 1 MiB through the rings,
# SIGTERM stops the host (drains, flushes, closes the tracking layer); the
# next backup is incremental, reads only the chunk the guest wrote, and
# restores the disk's new bytes.
set -u
T=${VHDTOOL:?}
B=${BUILD:-build}
VMM=$B/bin/vmm-mini
CL=$B/tests/helpers/storvsc-client
. "$(dirname "$0")/../lib.bash"
[ -x "$VMM" ] && [ -x "$CL" ] || skip "$VMM or $CL not built"
requires python3
fail_show "$dir/vmm.log"
pid=
at_exit '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null'
M=$((1 << 20))
repo=$dir/repo

jget() {   # ID KEY... -> one value a line
	"$T" backup show --json "$repo" "$1" |
		python3 -c 'import json,sys; j=json.load(sys.stdin); [print("null" if j[k] is None else j[k]) for k in sys.argv[1:]]' "${@:2}"
}
backup() {   # SRC -> prints the ID
	"$T" backup create "$repo" "$1" 2>"$dir/err" || fail "backup of $1: $(cat "$dir/err")"
}
expect() {   # ID KIND CHUNKS-READ
	local k r why
	{ read -r k; read -r r; read -r why; } < <(jget "$1" kind chunks-read reason)
	[ "$k" = "$2" ] || fail "backup $1 is $k ($why), want $2"
	[ "$r" = "$3" ] || fail "backup $1 read $r chunks, want $3 ($why)"
}
serve_and_write() {   # IMAGE SEED: the guest writes 1 MiB at 0 through the VSP
	rm -f "$dir/s.sock"
	"$VMM" host --listen "$dir/s.sock" --disk "$1" 2>>"$dir/vmm.log" &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
	[ -S "$dir/s.sock" ] || fail "vmm-mini did not start on $1"
	timeout 20 "$CL" "$dir/s.sock" verify 0 "$2" 1 >/dev/null || fail "guest write to $1"
	kill -TERM "$pid"
	wait "$pid"; rc=$?
	pid=
	[ "$rc" = 0 ] || fail "vmm-mini exited $rc after SIGTERM"
}

"$T" backup init "$repo" >/dev/null || fail "backup init"

"$T" create "$dir/dyn.vhd" 16M >/dev/null || fail "create dynamic"
head -c $((8 * M)) /dev/urandom > "$dir/raw.img"
"$T" write "$dir/dyn.vhd" 0 < "$dir/raw.img" || fail "fill dynamic"
truncate -s 16M "$dir/raw.img" || fail truncate

seed=7
for img in "$dir/dyn.vhd" "$dir/raw.img"; do
	name=$(basename "$img")
	id=$(backup "$img"); expect "$id" full 2
	[ -f "$img.ctk" ] || fail "no $name.ctk after the first backup"
	before=$("$T" read "$img" 0 "$M" | md5sum)
	serve_and_write "$img" $seed
	after=$("$T" read "$img" 0 "$M" | md5sum)
	[ "$before" != "$after" ] || fail "$name: the guest's write is not in the image"
	id=$(backup "$img"); expect "$id" incremental 1
	"$T" backup restore -O raw "$repo" "$id" "$dir/out.raw" >/dev/null || fail "restore $id"
	"$T" read "$img" 0 $((16 * M)) | cmp - "$dir/out.raw" ||
		fail "$name: the restore of $id differs from the image"
	[ "$(head -c "$M" "$dir/out.raw" | md5sum)" = "$after" ] ||
		fail "$name: the restore lacks the guest's bytes"
	rm -f "$dir/out.raw"
	# and again: nothing written, nothing read
	id=$(backup "$img"); expect "$id" incremental 0
	echo "$name: full, guest write through the VSP, incremental of 1 chunk, restored"
	seed=$((seed + 1))
done
echo PASS
