#!/bin/bash
# nbdcopy round trip through vhdtool serve: a sparse raw file copied into
# an empty dynamic VHD over NBD (nbdcopy uses several connections and
# zeroing), then copied back out; the result equals the source, qemu-img
# reads the VHD as the same disk, and `vhdtool check` finds it clean.
set -eu
. "$(dirname "$0")/nbd-common.bash"
requires nbdcopy qemu-img

truncate -s 48M "$dir/src.raw"
for at in 0 5 17 30 47; do
	head -c 700K /dev/urandom | dd of="$dir/src.raw" bs=1M seek=$at conv=notrunc status=none
done
"$V" create -t dynamic "$dir/disk.vhd" 48M >/dev/null

serve "$dir/disk.vhd"
nbdcopy "$dir/src.raw" "$uri"
stop

"$V" check "$dir/disk.vhd" >/dev/null || fail "check found problems after the copy in"
qemu-img compare -q -f raw -F vpc "$dir/src.raw" "$dir/disk.vhd" || fail "qemu-img sees other content"

serve --read-only "$dir/disk.vhd"
nbdcopy "$uri" "$dir/out.raw"
# Again through the buffered path of one connection, with holes skipped.
nbdcopy --connections=1 --requests=4 --request-size=1048576 "$uri" "$dir/out1.raw"
stop
cmp "$dir/src.raw" "$dir/out.raw" || fail "the copy out differs from the source"
cmp "$dir/src.raw" "$dir/out1.raw" || fail "the single-connection copy differs"
echo "48 MiB copied in and out through NBD, identical"
