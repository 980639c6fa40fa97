#!/bin/bash
# Readers of a dynamic VHD while its blocks are being allocated: 64 reader
# threads on the allocated half, one writer allocating the other half
# (tests/helpers/vhd-alloc-stall.c).  Prints reader latency percentiles of
# REPS runs; the median p99.9 is what an allocation costs other readers.
set -eu
V=${VHDTOOL:?}
B=${BUILD:-build}
REPS=${REPS:-3}
dir=$(mktemp -d /tmp/bench-alloc.XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$V" create "$dir/s.vhd" 512M >/dev/null
head -c 256M /dev/urandom | "$V" write "$dir/s.vhd" 0
echo "== vhd-alloc: reader latency while blocks are allocated (load: $(cut -d' ' -f1-3 /proc/loadavg))"
for i in $(seq "$REPS"); do
	cp --sparse=always "$dir/s.vhd" "$dir/t.vhd"
	"$B/tests/helpers/vhd-alloc-stall" "$dir/t.vhd"
done
