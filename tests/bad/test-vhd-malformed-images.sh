#!/bin/bash
# Malformed images: for each, vhdtool info, read, map and check must fail
# with one message that names the problem (a keyword per case), never
# crash or hang, and never change the file.  Then check --repair on the
# damage it can repair: afterwards check is clean and the data of intact
# blocks reads back unchanged (with vhdtool and with qemu-img).
#
# Images are made by vhdtool create/snapshot and qemu-img, then damaged
# with the helper vhdpatch (tests/helpers/vhdpatch.c).
set -u
VHDTOOL=${VHDTOOL:?set VHDTOOL to the vhdtool to test}
BUILD=${BUILD:-build}
PATCH=$PWD/$BUILD/tests/helpers/vhdpatch
[ -x "$PATCH" ] || { echo "missing $PATCH: run make first"; exit 1; }
. "$(dirname "$0")/../lib.bash"
T=$dir
have_qemu=false
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null && have_qemu=true

cases=0 failures=0 case=""
V() { timeout 30 "$VHDTOOL" "$@"; }
# fail MESSAGE: counts a failed case and goes on to the next (lib.bash's
# fail, which ends the test, is not what a table of cases wants)
fail() {
	echo "FAIL [$case] $*"
	sed 's/^/    stderr: /' "$T/err" 2>/dev/null | head -n 5
	failures=$((failures + 1))
}
die() { echo "setup failed: $*"; exit 1; }

# run CMD ARGS...: rc, $T/out, $T/err
run() {
	V "$@" >"$T/out" 2>"$T/err"
	rc=$?
}

# True (and no failure) unless the last command crashed, hung or tripped
# a sanitizer.
sane() {
	if [ "$rc" -ge 124 ]; then
		fail "$1: exit $rc (crash, signal or timeout)"
		return 1
	fi
	if grep -qE 'Sanitizer|runtime error|LeakSanitizer' "$T/err"; then
		fail "$1: sanitizer report"
		return 1
	fi
	return 0
}

# One line on stderr: "vhdtool: IMG: ...", containing keyword $2.
one_line() {
	local what=$1 kw=$2 n
	n=$(wc -l <"$T/err")
	[ "$n" -eq 1 ] || { fail "$what: $n lines on stderr, want 1"; return; }
	grep -q "^vhdtool: $IMG: " "$T/err" ||
		fail "$what: stderr does not start with 'vhdtool: $IMG: '"
	grep -qiE -- "$kw" "$T/err" || fail "$what: message lacks /$kw/"
}

# The file's content (for huge sparse files: size, mtime, first and last
# MiB, as reading 17 GiB of holes twice would take a minute).
digest() {
	if [ ! -f "$1" ]; then
		echo "not a file"
	elif [ "$(stat -c %s "$1")" -gt $((64 << 20)) ]; then
		stat -c '%s %y' "$1"
		{ head -c 1M "$1"; tail -c 1M "$1"; } | sha256sum
	else
		sha256sum <"$1"
	fi
}

# begin NAME [dyn|fix|qdyn|child|none]: a fresh folder $D with the image
# $IMG (img.vhd) copied from a base image; "child" makes IMG a
# differencing child of $D/dyn.vhd.
begin() {
	case=$1
	cases=$((cases + 1))
	D=$T/$case
	IMG=$D/img.vhd
	mkdir -p "$D"
	case ${2:-dyn} in
	dyn|fix|qdyn) cp "$T/base/$2.vhd" "$IMG" ;;
	child) cp "$T/base/dyn.vhd" "$D/dyn.vhd"
	       V snapshot "$D/dyn.vhd" "$IMG" || die "snapshot in $case" ;;
	none) ;;
	esac
}

# expect_fail KEYWORD [raw]: every command fails on $IMG naming KEYWORD
# (an extended regex, case-insensitive).  raw: the file has no VHD footer
# at all; info, read and map take such files as raw disks by design (info
# says "raw"), so only check must refuse it (exit 63, not a VHD); the
# others must still not crash or change it.
expect_fail() {
	local kw=$1 mode=${2:-vhd} before after
	before=$(digest "$IMG")
	for cmd in info read map; do
		if [ "$cmd" = read ]; then
			run read "$IMG" 0 65536
		else
			run "$cmd" "$IMG"
		fi
		sane "$cmd" || continue
		if [ "$mode" = raw ]; then
			if [ "$cmd" = info ] && [ "$rc" = 0 ]; then
				grep -q "^format: *raw" "$T/out" ||
					fail "info of a file without a footer does not say raw"
			fi
			if [ "$cmd" = read ] && [ "$rc" = 0 ]; then
				head -c 65536 "$IMG" | cmp -s - "$T/out" ||
					fail "read of a raw file returned other bytes"
			fi
			continue
		fi
		[ "$rc" = 1 ] || fail "$cmd: exit $rc, want 1"
		one_line "$cmd" "$kw"
	done
	run check "$IMG"
	if sane check; then
		[ "$mode" = raw ] && [ "$rc" != 63 ] && fail "check of a file without a footer: exit $rc, want 63"
		case $rc in
		2|3)  [ -s "$T/err" ] && fail "check: exit $rc with stderr output"
		    grep -q "^$IMG: " "$T/out" || fail "check: no report line for $IMG"
		    grep -qiE -- "$kw" "$T/out" || {
			fail "check: report lacks /$kw/"; sed 's/^/    out: /' "$T/out"; } ;;
		1|63)  one_line check "$kw" ;;
		*)  fail "check: exit $rc, want 1, 2, 3 or 63" ;;
		esac
	fi
	after=$(digest "$IMG")
	[ "$before" = "$after" ] || fail "the file was changed"
}

# expect_ok: $IMG opens and reads like $1 (a file of expected disk bytes).
expect_ok() {
	run read "$IMG" 0 "$(stat -c %s "$1")"
	sane read && { [ "$rc" = 0 ] || fail "read: exit $rc"; }
	cmp -s "$1" "$T/out" || fail "read returned other data"
}

size_of() { stat -c %s "$1"; }

# ---- base images ---------------------------------------------------------
mkdir -p "$T/base"
B=$T/base
V create -t dynamic --block-size 512K "$B/dyn.vhd" 4M || die "create dyn"
head -c 8192 /dev/urandom >"$B/pat0"
head -c 5000 /dev/urandom >"$B/pat2"
V write "$B/dyn.vhd" 100 <"$B/pat0" || die "write"
V write "$B/dyn.vhd" 1048576 <"$B/pat2" || die "write"
V read "$B/dyn.vhd" 0 4M >"$B/dyn.raw" || die "read"
V create -t fixed "$B/fix.vhd" 1M || die "create fix"
V write "$B/fix.vhd" 4096 <"$B/pat0" || die "write fix"
# dyn.vhd: header at 512, BAT at 1536 (8 entries), blocks 0 and 2 allocated.
[ "$("$PATCH" "$B/dyn.vhd" ?hdr.table_offset)" = 1536 ] || die "layout"
BAT0=$("$PATCH" "$B/dyn.vhd" ?bat.0)
DYN_SIZE=$(size_of "$B/dyn.vhd")
if $have_qemu; then
	qemu-img create -q -f vpc -o subformat=dynamic "$B/qdyn.vhd" 4M || die qemu-img
	qemu-io -f vpc -c 'write -P 0x5a 0 64k' -c 'write -P 0x6b 2M 64k' \
		"$B/qdyn.vhd" >/dev/null || die qemu-io
fi

# ---- footer ----------------------------------------------------------------
begin footer-cookie-raw fix
"$PATCH" "$IMG" "bytes.$(( $(size_of "$IMG") - 512 ))=s:XXXXXXXX"
expect_fail "not a VHD" raw

begin footer-cookie-and-copy-checksum dyn
"$PATCH" "$IMG" foot-end.cookie=s:conectiX foot-copy.checksum=0x12345678
expect_fail "footer checksum"

begin footer-checksum-fixed fix
"$PATCH" "$IMG" foot.checksum=1
expect_fail "footer checksum"

begin footer-checksum-dynamic dyn
"$PATCH" "$IMG" foot.checksum=1
expect_fail "footer checksum"

begin footer-version-2 dyn
"$PATCH" "$IMG" foot.version=0x00020000
expect_fail "unsupported footer version 2\.0"

begin footer-version-0-fixed fix
"$PATCH" "$IMG" foot.version=0
expect_fail "unsupported footer version 0\.0"

begin disk-type-5 dyn
"$PATCH" "$IMG" foot.disk_type=5
expect_fail "unknown disk type 5"

begin disk-type-0-fixed fix
"$PATCH" "$IMG" foot.disk_type=0
expect_fail "unknown disk type 0"

begin size-not-multiple-of-512 dyn
"$PATCH" "$IMG" foot.current_size=4194305
expect_fail "not a multiple of 512"

begin size-over-2040g-dynamic dyn
"$PATCH" "$IMG" foot.current_size=$((2041 << 30))
expect_fail "larger than the VHD limit"

begin size-over-2040g-fixed fix
"$PATCH" "$IMG" foot.current_size=$((4 << 40))
expect_fail "larger than the VHD limit"

begin size-wraps-block-count dyn
"$PATCH" "$IMG" hdr.block_size=0x10000000 bat.0=0xffffffff bat.2=0xffffffff \
	foot.current_size=0xfffffffffffffe00
expect_fail "larger than the VHD limit"

begin data-offset-all-ones dyn
"$PATCH" "$IMG" foot.data_offset=0xffffffffffffffff
expect_fail "bad data offset"

begin data-offset-unaligned dyn
"$PATCH" "$IMG" foot.data_offset=513
expect_fail "bad data offset"

begin data-offset-past-eof dyn
"$PATCH" "$IMG" foot.data_offset=0x10000000000
expect_fail "dynamic header (offset|at offset) 1099511627776"

begin data-offset-fixed fix
"$PATCH" "$IMG" foot.data_offset=512
expect_fail "bad data offset"

begin data-offset-zero dyn
"$PATCH" "$IMG" foot.data_offset=0
expect_fail "cxsparse"

begin footer-torn-copy-fixed dyn
"$PATCH" "$IMG" foot-end.checksum=1 foot-copy.disk_type=2 \
	foot-copy.data_offset=0xffffffffffffffff
expect_fail "footer checksum"

# ---- dynamic header --------------------------------------------------------
begin header-cookie dyn
"$PATCH" "$IMG" hdr.cookie=s:cxsparsX
expect_fail "cxsparse"

begin header-checksum dyn
"$PATCH" "$IMG" hdr.checksum=1
expect_fail "dynamic header checksum"

begin header-version dyn
"$PATCH" "$IMG" hdr.version=0x00020000
expect_fail "unsupported dynamic header version"

begin block-size-0 dyn
"$PATCH" "$IMG" hdr.block_size=0
expect_fail "block size 0 "

begin block-size-not-power-of-2 dyn
"$PATCH" "$IMG" hdr.block_size=786432
expect_fail "block size 786432"

begin block-size-512m dyn
"$PATCH" "$IMG" hdr.block_size=0x20000000
expect_fail "block size 536870912"

begin block-size-2g dyn
"$PATCH" "$IMG" hdr.block_size=0x80000000
expect_fail "block size 2147483648"

begin max-entries-ffffffff dyn
"$PATCH" "$IMG" hdr.max_table_entries=0xffffffff
expect_fail "BAT has 4294967295 entries"

# The same in a sparse 17 GiB file that could hold such a BAT: refused
# before any allocation.  Allocations are capped (1 GiB) so that a
# regression fails here instead of exhausting the machine's memory.
begin max-entries-ffffffff-sparse dyn
"$PATCH" "$IMG" hdr.max_table_entries=0xffffffff
tail -c 512 "$IMG" >"$D/foot"
truncate -s $((17 << 30)) "$IMG"
cat "$D/foot" >>"$IMG"
(
	# ASan reserves terabytes of address space: cap its allocations
	# instead of the address space.
	[ "$BUILD" = build-san ] || ulimit -v $((2 << 20))
	export ASAN_OPTIONS=${ASAN_OPTIONS:-}:max_allocation_size_mb=1024:allocator_may_return_null=1
	expect_fail "BAT has 4294967295 entries"
	echo "$failures" >"$D/failures"
)
failures=$(cat "$D/failures")
rm -f "$IMG"

begin max-entries-0 dyn
"$PATCH" "$IMG" hdr.max_table_entries=0
expect_fail "BAT has 0 entries but the disk size needs 8"

begin bat-too-small dyn
"$PATCH" "$IMG" hdr.max_table_entries=4
expect_fail "BAT has 4 entries but the disk size needs 8"

begin bat-extra-entry-zero dyn
"$PATCH" "$IMG" hdr.max_table_entries=16 bat.8=0
expect_fail "BAT entry 8 points at offset 0, inside the image metadata"

begin table-offset-past-eof dyn
"$PATCH" "$IMG" hdr.table_offset=0x10000000000
expect_fail "BAT of 8 entries at offset 1099511627776 does not fit"

begin table-offset-unaligned dyn
"$PATCH" "$IMG" hdr.table_offset=1537
expect_fail "BAT offset 0x601 is not a sector boundary"

begin table-offset-zero dyn
"$PATCH" "$IMG" hdr.table_offset=0
expect_fail "BAT offset 0x0"

begin table-offset-in-footer dyn
"$PATCH" "$IMG" hdr.table_offset=$((DYN_SIZE - 512))
expect_fail "does not fit"

# ---- BAT entries -----------------------------------------------------------
begin bat-entry-past-eof dyn
"$PATCH" "$IMG" bat.3=0x7fffffff
expect_fail "BAT entry 3: block at offset [0-9]+ ends past the end of the file"

begin bat-entry-into-footer dyn
"$PATCH" "$IMG" bat.3=$(( (DYN_SIZE - 512) / 512 ))
expect_fail "BAT entry 3: .* past the end of the file"

begin bat-entry-into-header dyn
"$PATCH" "$IMG" bat.3=1
expect_fail "BAT entry 3 points at offset 512, inside the image metadata"

begin bat-entry-into-bat dyn
"$PATCH" "$IMG" bat.3=3
expect_fail "BAT entry 3 .*inside the image metadata"

begin bat-entries-same-block dyn
"$PATCH" "$IMG" bat.3="$BAT0"
expect_fail "BAT entries 0 and 3 point at overlapping blocks"

begin bat-entries-overlap dyn
"$PATCH" "$IMG" bat.5=$((BAT0 + 8))
expect_fail "BAT entries 0 and 5 point at overlapping blocks"

# ---- truncated files -------------------------------------------------------
# (A dynamic image cut inside its end footer keeps all its data: it
# opens read-only with the footer copy; see repair-footer-cut-short.)
begin truncated-in-footer-fixed fix
truncate -s $(( $(size_of "$IMG") - 100 )) "$IMG"
expect_fail "not a VHD" raw

begin truncated-in-footer-copy-damaged dyn
"$PATCH" "$IMG" foot-copy.checksum=1
truncate -s $((DYN_SIZE - 100)) "$IMG"
expect_fail "footer checksum"

begin truncated-in-header dyn
truncate -s 1000 "$IMG"
expect_fail "dynamic header"

begin truncated-in-bat dyn
truncate -s 1800 "$IMG"
expect_fail "BAT of 8 entries at offset 1536 does not fit|cannot read the BAT"

begin truncated-in-data-block dyn
truncate -s 600000 "$IMG"
expect_fail "(BAT entry 2|data lost: block 2): .*past the end of the file"

begin truncated-to-footer-copy dyn
truncate -s 512 "$IMG"
expect_fail "dynamic header"

begin fixed-shorter-than-size fix
head -c 524288 "$T/base/fix.vhd" >"$D/short"
tail -c 512 "$T/base/fix.vhd" >>"$D/short"
mv "$D/short" "$IMG"
expect_fail "fixed image is truncated: 524288 data bytes for a 1048576-byte disk"

begin fixed-size-doubled fix
"$PATCH" "$IMG" foot.current_size=2097152 foot.original_size=2097152
expect_fail "fixed image is truncated"

# ---- files that are no VHD -------------------------------------------------
begin empty-file none
: >"$IMG"
expect_fail "not a VHD" raw

begin file-of-511-bytes none
head -c 511 /dev/urandom >"$IMG"
expect_fail "not a VHD" raw

begin raw-file none
head -c 1M /dev/urandom >"$IMG"
expect_fail "not a VHD" raw

begin directory none
mkdir "$IMG"
expect_fail "not a regular file"

begin fifo none
mkfifo "$IMG"
expect_fail "not a regular file"

begin missing-file none
expect_fail "No such file"

# ---- qemu-img's images -----------------------------------------------------
if $have_qemu; then
	QBAT0=$("$PATCH" "$B/qdyn.vhd" ?bat.0)
	begin qemu-bat-entries-same-block qdyn
	"$PATCH" "$IMG" bat.1="$QBAT0"
	expect_fail "BAT entries 0 and 1 point at overlapping blocks"

	# qemu's images are served with their CHS size: make it exceed the BAT.
	begin qemu-chs-size-beyond-bat qdyn
	"$PATCH" "$IMG" foot.cylinders=1000 foot.heads=16 foot.sectors=63
	expect_fail "BAT has [0-9]+ entries but the disk size needs 247"

	begin qemu-header-checksum qdyn
	"$PATCH" "$IMG" hdr.checksum=0
	expect_fail "dynamic header checksum"
else
	echo "note: qemu-img/qemu-io missing; qemu-made cases skipped"
fi

# ---- parents ---------------------------------------------------------------
begin parent-missing child
rm "$D/dyn.vhd"
expect_fail "parent image not found"

begin parent-uuid-mismatch child
"$PATCH" "$D/dyn.vhd" foot.uuid=x:00112233445566778899aabbccddeeff
expect_fail "has UUID 00112233-4455-6677-8899-aabbccddeeff but"

begin parent-damaged child
"$PATCH" "$D/dyn.vhd" hdr.checksum=1
expect_fail "parent: .*dynamic header checksum"

begin parent-is-raw-file child
head -c 1M /dev/urandom >"$D/dyn.vhd"
expect_fail "parent: .*not a VHD"

begin parent-is-directory child
rm "$D/dyn.vhd"
mkdir "$D/dyn.vhd"
expect_fail "parent image not found"

begin parent-is-fifo child
rm "$D/dyn.vhd"
mkfifo "$D/dyn.vhd"
expect_fail "parent image not found"

# a -> b -> a: y's parent x.vhd is replaced by a child of y.
begin parent-cycle none
V create -t dynamic --block-size 512K "$D/x.vhd" 1M &&
V snapshot "$D/x.vhd" "$IMG" && V snapshot "$IMG" "$D/z.vhd" &&
mv "$D/z.vhd" "$D/x.vhd" || die "cycle setup"
expect_fail "parent cycle"

begin self-parent child
"$PATCH" "$IMG" loc.0.code=x:00000000 loc.1.code=x:00000000 \
	hdr.parent_name=u16be:img.vhd
expect_fail "parent cycle"

# 40 layers.  Each layer is made as the child of a stand-in file of the
# same name (snapshot opens the whole chain, which stops at 32 layers),
# then gets the real parent's UUID.
begin chain-too-deep none
V create -t dynamic --block-size 512K "$D/c0.vhd" 1M || die "c0"
for k in $(seq 1 40); do
	p=$D/c$((k - 1)).vhd
	mv "$p" "$p.real"
	V create -t dynamic --block-size 512K "$p" 1M && V snapshot "$p" "$D/c$k.vhd" ||
		die "layer $k"
	mv "$p.real" "$p"
	"$PATCH" "$D/c$k.vhd" hdr.parent_uuid="$("$PATCH" "$p" ?foot.uuid)"
done
run info "$D/c31.vhd"   # 32 layers: the limit
[ "$rc" = 0 ] && [ "$(grep -c '^filename:' "$T/out")" = 32 ] ||
	fail "a chain of 32 layers does not open"
IMG=$D/c40.vhd
expect_fail "vhd: chain too deep \(more than 32 layers\)"

# Locators that cannot be used, with a parent name that finds nothing.
begin locator-huge-length child
"$PATCH" "$IMG" loc.0.data_length=0x7fffffff loc.1.data_length=0xfffffffe \
	hdr.parent_name=u16be:gone.vhd
expect_fail "parent image not found"

begin locator-odd-length child
"$PATCH" "$IMG" loc.0.data_length=7 loc.1.data_length=9 \
	hdr.parent_name=u16be:gone.vhd
expect_fail "parent image not found"

begin locator-offset-past-eof child
"$PATCH" "$IMG" loc.0.data_offset=0x10000000000 loc.1.data_offset=0xfffffffffffffe00 \
	hdr.parent_name=u16be:gone.vhd
expect_fail "parent image not found"

begin locator-invalid-utf16 child
o0=$("$PATCH" "$IMG" ?loc.0.data_offset)
o1=$("$PATCH" "$IMG" ?loc.1.data_offset)
"$PATCH" "$IMG" hdr.parent_name=u16be:gone.vhd "bytes.$o0=x:00d841000000" \
	"bytes.$o1=x:00dc00d8"
expect_fail "parent image not found"

begin locator-empty-string child
"$PATCH" "$IMG" loc.0.data_length=2 loc.1.data_length=2 \
	"bytes.$("$PATCH" "$IMG" ?loc.0.data_offset)=x:0000" \
	"bytes.$("$PATCH" "$IMG" ?loc.1.data_offset)=x:0000" \
	hdr.parent_name=u16be:gone.vhd
expect_fail "parent image not found"

begin parent-name-invalid-utf16 child
"$PATCH" "$IMG" loc.0.code=x:00000000 loc.1.code=x:00000000 \
	hdr.parent_name=x:d8000041d8000042
expect_fail "no usable locator or parent name"

# Bad locators do not hide a parent the name still finds.
begin locators-bad-name-good child
"$PATCH" "$IMG" loc.0.data_length=0x7fffffff loc.1.data_offset=0x10000000000
expect_ok "$T/base/dyn.raw"

# ---- check --repair ----------------------------------------------------------
# repair_case KEYWORD LOST: check finds KEYWORD (exit 2), --repair fixes
# it (exit 0), check is then clean, and the disk reads like the original
# except in the blocks listed in LOST (indices of 512 KiB blocks that now
# read as zeros).
# repair_case KEYWORD [LOST-BLOCKS [REPAIR-EXIT [ZERO-FROM ZERO-BYTES]]]: a
# repair that lost data exits 2 (the loss stays a problem); the image reads
# as the base with the lost blocks (or bytes) zeroed.
repair_case() {
	local kw=$1 lost=${2:-} want_rc=${3:-0} b
	cp "$T/base/dyn.raw" "$D/want"
	for b in $lost; do
		dd if=/dev/zero of="$D/want" bs=512K seek="$b" count=1 conv=notrunc status=none
	done
	[ -n "${4:-}" ] && dd if=/dev/zero of="$D/want" bs=1 seek="$4" count="$5" conv=notrunc status=none
	run check "$IMG"
	sane check && { [ "$rc" = 2 ] || fail "check before repair: exit $rc"; }
	grep -qiE -- "$kw" "$T/out" || fail "check before repair: no /$kw/"
	run check --repair "$IMG"
	sane "check --repair" && { [ "$rc" = "$want_rc" ] || fail "check --repair: exit $rc"; }
	[ "$want_rc" = 0 ] || grep -q "data lost" "$T/out" || fail "check --repair does not say what was lost"
	grep -q "repaired: " "$T/out" || fail "check --repair reports no repair"
	run check "$IMG"
	sane check && { [ "$rc" = 0 ] || fail "check after repair: exit $rc"; }
	run info "$IMG"
	grep -q "^warning:" "$T/out" && fail "info still warns after repair"
	expect_ok "$D/want"
	if $have_qemu; then
		qemu-img convert -f vpc -O raw "$IMG" "$D/q.raw" ||
			fail "qemu-img cannot read the repaired image"
		cmp -s "$D/want" "$D/q.raw" || fail "qemu-img reads other data"
	fi
}

begin repair-torn-footer dyn
"$PATCH" "$IMG" "bytes.$((DYN_SIZE - 412))=x:deadbeefdeadbeef"  # cookie intact
run info "$IMG"
[ "$rc" = 0 ] && grep -q "^warning: .*copy at offset 0" "$T/out" ||
	fail "a torn end footer does not open with the copy"
repair_case "end footer is torn"
[ "$(size_of "$IMG")" = "$DYN_SIZE" ] || fail "file size changed"

begin repair-footer-cut-short dyn
truncate -s $((DYN_SIZE - 100)) "$IMG"
run info "$IMG"
[ "$rc" = 0 ] && grep -q "^warning: .*copy at offset 0" "$T/out" ||
	fail "an image cut inside its end footer does not open with the copy"
repair_case "end footer is missing"
[ "$(size_of "$IMG")" = $((DYN_SIZE + 512)) ] ||
	fail "footer not put after the last (partial) sector"

begin repair-lost-footer dyn
truncate -s $((DYN_SIZE - 512)) "$IMG"
repair_case "end footer is missing"
[ "$(size_of "$IMG")" = "$DYN_SIZE" ] || fail "footer not put back at the end"

begin repair-zeros-after-footer dyn
truncate -s $((DYN_SIZE + 4096)) "$IMG"
repair_case "end footer is missing"

begin repair-cut-in-last-block dyn
truncate -s 700000 "$IMG"     # block 2 (disk 1M-1.5M, bitmap at file offset 531968) cut
# Its first 700000 - 532480 bytes survive; the rest of the block is lost.
repair_case "data lost: block 2: disk bytes $((1048576 + 700000 - 532480))-" "" 2 \
	$((1048576 + 700000 - 532480)) $((524288 - 700000 + 532480))

begin repair-bat-entry-past-eof dyn
"$PATCH" "$IMG" bat.5=0x7fffffff bat.7=0x10000000
repair_case "BAT entry 5: block at offset [0-9]+ ends past the end" "" 2

begin repair-footer-copy dyn
"$PATCH" "$IMG" foot-copy.checksum=1
repair_case "footer copy at offset 0 is damaged"

echo "$cases cases, $failures failures"
[ "$failures" = 0 ]
