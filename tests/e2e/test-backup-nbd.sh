#!/bin/bash
# Writes that arrive through the NBD server (`vhdtool serve`, written by
# qemu-io as an NBD client) are recorded by change tracking: after the
# server stops, the next backup is incremental and reads exactly the 3
# data chunks the client wrote (a 4th, zeroed where nothing was allocated,
# is known to read as zeros and is not read), and restores the image.
set -eu
. "$(dirname "$0")/../interop/nbd-common.bash"
requires qemu-io python3
repo=$dir/repo
img=$dir/disk.vhd

jget() {
	"$V" backup show --json "$repo" "$1" |
		python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["kind"], j["chunks-read"], j["reason"])'
}

"$V" create -t dynamic "$img" 32M >/dev/null
head -c 12M /dev/urandom | "$V" write "$img" 0
"$V" backup init "$repo"
id=$("$V" backup create "$repo" "$img" 2>/dev/null)
[ "$(jget "$id" | cut -d' ' -f1-2)" = "full 3" ] || fail "first backup: $(jget "$id")"

serve "$img"
qemu-io -f raw "$uri" -c 'write -P 0x33 5M 64k' -c 'write -P 0x44 17M 4k' \
	-c 'write -z 9M 1M' -c 'write -z 29M 1M' -c 'write -P 0x55 5M 512' >/dev/null ||
	fail "qemu-io over NBD"
stop TERM

id=$("$V" backup create "$repo" "$img" 2>/dev/null)
got=$(jget "$id")
[ "$(echo "$got" | cut -d' ' -f1-2)" = "incremental 3" ] ||
	fail "backup after NBD writes: $got (want incremental, 3 chunks read)"
"$V" backup restore -O raw "$repo" "$id" "$dir/out.raw"
"$V" read "$img" 0 32M | cmp - "$dir/out.raw" || fail "restore differs from the image"
[ "$("$V" read "$img" 17M 2 | od -An -tx1 | tr -d ' ')" = 4444 ] || fail "NBD write not in the image"
[ "$("$V" read "$img" 9M 4 | od -An -tx1 | tr -d ' ')" = 00000000 ] || fail "NBD zeroing not in the image"
echo "NBD writes tracked: incremental read 3 chunks"
