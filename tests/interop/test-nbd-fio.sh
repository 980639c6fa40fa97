#!/bin/bash
# fio's nbd engine against vhdtool serve: a random write + verify job at
# mixed block sizes and queue depth 16 on a dynamic VHD passes; after a
# server restart a verify-only pass finds the same data.
set -eu
. "$(dirname "$0")/nbd-common.bash"
requires fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"

# fio writes its verify state file (NAME-N-verify.state) into the current
# folder: run it in the scratch folder, never in the source tree.
cd "$dir"
"$V" create -t dynamic "$dir/disk.vhd" 64M >/dev/null
job=(--name=nbdverify --ioengine=nbd --uri="$uri" --size=24M --offset=4M
     --rw=randwrite --bsrange=512-64k --iodepth=16 --verify=crc32c
     --verify_fatal=1 --randseed=4242 --output="$dir/fio.out")

serve "$dir/disk.vhd"
fio "${job[@]}" || { cat "$dir/fio.out"; fail "fio write+verify failed"; }
stop
serve --read-only "$dir/disk.vhd"
fio "${job[@]}" --verify_only=1 || { cat "$dir/fio.out"; fail "fio verify after restart failed"; }
stop
"$V" check "$dir/disk.vhd" >/dev/null || fail "check found problems"
echo "fio nbd write+verify passed, and again after a restart"
