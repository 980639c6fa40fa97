#!/bin/bash
# Make the seed images of fuzz/corpus/fuzz-vhd-open/ (all under 40 KB):
# vhdtool's create only makes blocks of 512 KiB and more, so the small
# dynamic images get 4 KiB blocks by editing the header with vhdpatch.
# Usage (from the repository root, after `make`):  fuzz/mkseeds.sh
# Crash reproducers found by the fuzzer are added beside these by hand
# (named crash-*), and are not touched by this script.
set -eu
V=$PWD/build/vhdtool
P=$PWD/build/tests/helpers/vhdpatch
out=$PWD/fuzz/corpus/fuzz-vhd-open
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"
cd "$t"

pattern() { # N BYTE: N bytes of a recognisable pattern
	head -c "$1" /dev/zero | tr '\0' "$2"
}

# A 64 KiB dynamic image with 4 KiB blocks, blocks 0 and 5 written.
tiny_dynamic() {
	"$V" create -t dynamic --block-size 512K "$1" 64K
	"$P" "$1" hdr.block_size=4096 hdr.max_table_entries=16 \
		bytes.1536=x:$(printf 'ff%.0s' $(seq 64))
	pattern 4096 a | "$V" write "$1" 0
	pattern 1000 b | "$V" write "$1" 20580
}

"$V" create -t fixed fixed.vhd 32K
pattern 5000 c | "$V" write fixed.vhd 1000
cp fixed.vhd "$out/fixed-32k.vhd"

tiny_dynamic parent.vhd
cp parent.vhd "$out/dynamic-64k-4k-blocks.vhd"

# Differencing child of it (inherits the 4 KiB blocks); one partial
# granule written (read-modify-write from the parent).
"$V" snapshot parent.vhd child.vhd
pattern 700 d | "$V" write child.vhd 4100
cp child.vhd "$out/diff-child.vhd"

# The same child with a MacX (UTF-8 file://) locator as its only one.
cp child.vhd macx.vhd
loc=$("$P" macx.vhd ?loc.0.data_offset)
"$P" macx.vhd loc.0.code=s:MacX loc.0.data_length=19 loc.0.data_space=512 \
	loc.1.code=x:00000000 "bytes.$loc=s:file://./parent.vhd"
cp macx.vhd "$out/diff-child-macx.vhd"

# The dynamic image with a torn end footer (opened with the copy).
cp parent.vhd torn.vhd
"$P" torn.vhd foot-end.checksum=1
cp torn.vhd "$out/dynamic-torn-footer.vhd"

# qemu-img's own small images (creator "qemu": CHS size).
if command -v qemu-img >/dev/null; then
	qemu-img create -q -f vpc -o subformat=dynamic q-dyn.vhd 64K
	qemu-img create -q -f vpc -o subformat=fixed q-fixed.vhd 16K
	cp q-dyn.vhd "$out/qemu-dynamic-empty.vhd"
	cp q-fixed.vhd "$out/qemu-fixed-16k.vhd"
fi
ls -l "$out"
