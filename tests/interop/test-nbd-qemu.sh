#!/bin/bash
# qemu against vhdtool serve: `qemu-img convert` from an nbd+unix:// URL
# reads a differencing chain (which qemu cannot open as VHD files) as the
# content we put there; qemu-io writes through --snapshot land in the
# temporary child, never in the image; raw images refuse --snapshot.
set -eu
. "$(dirname "$0")/nbd-common.bash"
requires qemu-img qemu-io

head -c 1M /dev/urandom >"$dir/a.bin"
head -c 300K /dev/urandom >"$dir/b.bin"
head -c 5000 /dev/urandom >"$dir/c.bin"
"$V" create -t dynamic "$dir/base.vhd" 24M >/dev/null
"$V" write "$dir/base.vhd" 2M <"$dir/a.bin"
"$V" snapshot "$dir/base.vhd" "$dir/child.vhd"
"$V" write "$dir/child.vhd" 2500K <"$dir/b.bin"
"$V" write "$dir/child.vhd" 12345 <"$dir/c.bin"
# The same disk built independently, as a raw file.
truncate -s 24M "$dir/want.raw"
dd if="$dir/a.bin" of="$dir/want.raw" bs=1K seek=2048 conv=notrunc status=none
dd if="$dir/b.bin" of="$dir/want.raw" bs=1K seek=2500 conv=notrunc status=none
dd if="$dir/c.bin" of="$dir/want.raw" bs=1 seek=12345 conv=notrunc status=none

serve --read-only "$dir/child.vhd"
qemu-img convert -f raw -O raw "$uri" "$dir/got.raw"
cmp "$dir/want.raw" "$dir/got.raw" || fail "qemu-img convert from NBD differs"
qemu-img info -f raw "$uri" | grep -q 'virtual size: 24 MiB' || fail "qemu-img info size"
stop

# --snapshot: writes are served back, the files stay as they were.
sum_before=$(cat "$dir/base.vhd" "$dir/child.vhd" | sha256sum)
mkdir "$dir/tmp"
TMPDIR=$dir/tmp serve --snapshot "$dir/child.vhd"
[ -z "$(ls -A "$dir/tmp")" ] || fail "temporary files visible: $(ls "$dir/tmp")"
qemu-io -f raw -c 'write -P 0x5a 1M 64K' -c 'write -z 2M 4K' "$uri" >/dev/null
qemu-io -f raw -c 'read -P 0x5a 1M 64K' -c 'read -P 0 2M 4K' "$uri" | grep -q 'read 4096/4096' ||
	fail "snapshot writes not read back"
stop INT
sum_after=$(cat "$dir/base.vhd" "$dir/child.vhd" | sha256sum)
[ "$sum_before" = "$sum_after" ] || fail "--snapshot modified the image"
[ -z "$(ls -A "$dir/tmp")" ] || fail "temporary files left: $(ls "$dir/tmp")"

# Raw files cannot have a VHD child: a clear refusal.
truncate -s 1M "$dir/disk.raw"
if "$V" serve --snapshot --socket "$sock" "$dir/disk.raw" 2>"$dir/err"; then
	fail "--snapshot of a raw file was accepted"
fi
grep -q 'raw' "$dir/err" || fail "unclear message: $(cat "$dir/err")"
echo "qemu-img convert from NBD matches; --snapshot leaves the image unchanged"
