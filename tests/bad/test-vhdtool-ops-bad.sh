#!/bin/bash
# Bad input to convert, compact, merge and resize: missing files, wrong
# image types, raw files, damaged images, bad sizes and options.  Each must
# fail with one clear line, the right exit code (1 failure, 2 usage), and
# change nothing.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
cd "$dir"
# expect RC PATTERN CMD...: CMD exits RC and says PATTERN
expect() {
	local rc=$1 pat=$2
	shift 2
	"$@" >out 2>err
	local got=$?
	[ "$got" = "$rc" ] || fail "$* exited $got, expected $rc ($(cat err))"
	grep -q -- "$pat" err || fail "$*: message '$(cat err)' lacks '$pat'"
	# Failures are one line; usage errors may add the usage text.
	[ "$rc" = 2 ] || [ "$(wc -l < err)" = 1 ] || fail "$*: more than one line: $(cat err)"
	grep -q 'AddressSanitizer\|runtime error' err && fail "$*: sanitizer report"
	return 0
}

"$T" create dyn.vhd 8M >/dev/null && printf data | "$T" write dyn.vhd 0 || fail "setup"
"$T" create -t fixed fix.vhd 8M >/dev/null || fail "setup"
head -c 1M /dev/urandom > plain.raw
cp dyn.vhd dyn.orig; cp fix.vhd fix.orig; cp plain.raw plain.orig

# Missing files.
expect 1 'missing.raw: cannot open' "$T" convert missing.raw out.vhd
[ -e out.vhd ] && fail "convert of a missing file created DST"
expect 1 'missing.vhd: cannot open' "$T" compact missing.vhd
expect 1 'missing.vhd: cannot open' "$T" merge missing.vhd
expect 1 'missing.vhd: cannot open' "$T" resize missing.vhd 1G
expect 1 'No such file' "$T" convert dyn.vhd nodir/out.vhd

# Wrong types.
expect 1 'fixed image' "$T" compact fix.vhd
expect 1 'not a differencing one' "$T" merge dyn.vhd
expect 1 'not a differencing one' "$T" merge fix.vhd
expect 1 'not a VHD image' "$T" compact plain.raw
expect 1 'not a VHD image' "$T" merge plain.raw
expect 1 'not a VHD image' "$T" resize plain.raw 2M
expect 1 'is a folder' "$T" convert --force -O raw dyn.vhd .
expect 1 'already exists' "$T" convert dyn.vhd fix.vhd

# Sizes and options.
expect 2 'not a number' "$T" resize dyn.vhd 12Q
expect 2 'not a number' "$T" resize dyn.vhd ''
expect 2 'not a multiple of 512' "$T" resize dyn.vhd 1000
expect 2 'too large' "$T" resize dyn.vhd 99999999999999999999
expect 1 'larger than the VHD limit' "$T" resize dyn.vhd 3T
expect 2 'cannot shrink' "$T" resize dyn.vhd -9M
expect 2 'usage' "$T" resize dyn.vhd
expect 2 'usage' "$T" resize dyn.vhd 8M 9M
expect 2 'usage' "$T" resize --bogus dyn.vhd 8M
expect 2 'not a power of two' "$T" convert --block-size 3M dyn.vhd o.vhd
expect 2 'not a number' "$T" convert --block-size lots dyn.vhd o.vhd
expect 2 'not a multiple of 512' "$T" convert --fixed-align 1000 -O fixed dyn.vhd o.vhd
expect 2 'unknown output format' "$T" convert -O qcow2 dyn.vhd o.vhd
expect 2 'cannot tell the output format' "$T" convert dyn.vhd o.qcow2
expect 2 'applies to -O dynamic only' "$T" convert -O raw --block-size 1M dyn.vhd o.raw
expect 2 'usage' "$T" convert dyn.vhd
expect 2 'usage' "$T" compact
expect 2 'usage' "$T" compact a.vhd b.vhd
expect 2 'usage' "$T" merge
expect 2 'usage' "$T" merge --bogus x.vhd
expect 1 'shrinking needs --allow-shrink' "$T" resize fix.vhd 4M
ls o.* 2>/dev/null && fail "a refused convert left output"

# Damaged images: a BAT entry pointing into the metadata.
cp dyn.vhd bad.vhd
printf '\0\0\0\1' | dd of=bad.vhd bs=1 seek=1536 conv=notrunc status=none
cp bad.vhd bad.orig
expect 1 'inside the image metadata' "$T" compact bad.vhd
expect 1 'inside the image metadata' "$T" resize bad.vhd 16M
expect 1 'inside the image metadata' "$T" convert bad.vhd o.raw
cmp bad.vhd bad.orig || fail "a refused operation changed the damaged image"
# A differencing image whose parent is gone.
"$T" snapshot dyn.vhd child.vhd && mv dyn.vhd moved.vhd || fail "setup child"
expect 1 'parent image not found' "$T" merge child.vhd
expect 1 'parent image not found' "$T" convert child.vhd o.raw
mv moved.vhd dyn.vhd

cmp dyn.vhd dyn.orig && cmp fix.vhd fix.orig && cmp plain.raw plain.orig ||
	fail "a refused operation changed an input"
echo "bad input refused with clear messages, nothing changed"
