#!/bin/bash
# vhdtool serve --direct: a fixed VHD, a dynamic VHD and a raw file served
# with O_DIRECT + libaio, and a loop device with 4096-byte sectors.
# qemu-io writes at odd offsets (bounced by the block layer) and aligned
# ones read back equal through nbdcopy and vhdtool read; nbdinfo reports
# the block sizes the disks' limits give (minimum = direct-I/O block).
set -eu
. "$(dirname "$0")/nbd-common.bash"
requires nbdinfo nbdcopy qemu-io

"$V" create -t fixed "$dir/fixed.vhd" 16M >/dev/null
"$V" create -t dynamic "$dir/dyn.vhd" 16M >/dev/null
truncate -s 16M "$dir/raw.img"

check_one() {   # IMAGE MINBLOCK
	local img=$1 min=$2

	serve --direct "$img"
	nbdinfo --json "$uri" >"$dir/info.json"
	grep -q "\"block_size_minimum\": $min\\b" "$dir/info.json" ||
		fail "$img: minimum block size is not $min: $(grep block_size "$dir/info.json")"
	grep -q '"block_size_preferred": 4096' "$dir/info.json" ||
		fail "$img: preferred block size is not 4096"
	head -c 16M /dev/urandom >"$dir/pattern"
	# Aligned and misaligned writes, then a full copy out.
	qemu-io -f raw -c "write -P 0x5a 0 64k" -c "write -P 0xa5 1000 3000" \
		-c "write -P 0x33 8191k 2049k" "$uri" >/dev/null ||
		fail "$img: qemu-io writes failed"
	python3 - "$dir/model" <<'PY'
import sys
m = bytearray(16 << 20)
m[0:65536] = b'\x5a' * 65536
m[1000:4000] = b'\xa5' * 3000
m[8191*1024:8191*1024 + 2049*1024] = b'\x33' * (2049*1024)
open(sys.argv[1], 'wb').write(m)
PY
	nbdcopy "$uri" "$dir/out" || fail "$img: nbdcopy failed"
	cmp "$dir/out" "$dir/model" || fail "$img: data read back over NBD differs"
	stop
	if [ "${img##*.}" = vhd ]; then
		"$V" check "$img" >/dev/null || fail "$img: check found problems"
	fi
	"$V" read "$img" 0 16M >"$dir/out2" || fail "$img: vhdtool read failed"
	cmp "$dir/out2" "$dir/model" || fail "$img: data read by vhdtool differs"
}

check_one "$dir/fixed.vhd" 512
check_one "$dir/dyn.vhd" 512
check_one "$dir/raw.img" 512

if command -v losetup >/dev/null && loop=$(losetup -f --show --sector-size 4096 "$dir/raw.img" 2>/dev/null); then
	at_exit '[ -z "$loop" ] || losetup -d "$loop" 2>/dev/null'
	check_one "$loop" 4096
	losetup -d "$loop"
	loop=
else
	echo "note: no loop device; 4096-byte sector case skipped"
fi
echo "ok"
