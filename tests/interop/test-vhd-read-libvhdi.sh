#!/bin/bash
# libvhdi reads our images: `vhdiinfo` accepts fixed, dynamic and
# differencing images (media size, identifier and parent identifier as we
# wrote them), and `vhdimount` (FUSE) serves a two-level chain we wrote,
# with unaligned partial-granule writes in the child, byte-identical to
# `vhdtool read`.  The vhdimount half is skipped (77) when FUSE is not
# usable; the vhdiinfo half has run by then.
set -eu
. "$(dirname "$0")/../lib.bash"
requires vhdiinfo cmp
: "${VHDTOOL:?VHDTOOL must point at the vhdtool binary}"
mnt=$dir/mnt
at_exit 'if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt" 2>/dev/null || fusermount -u "$mnt" 2>/dev/null; fi'
cd "$dir"

uuid_of() { "$VHDTOOL" info --json "$1" | head -n1 |
	sed -n 's/^{"filename": "[^"]*", .*"uuid": "\([0-9a-f-]*\)".*/\1/p'; }
info_line() { vhdiinfo "$1" | sed -n "s/^[[:space:]]*$2[[:space:]]*: //p"; }

head -c 3000000 /dev/urandom >rand.bin
# w IMG OFF LEN FROM: LEN bytes of rand.bin from byte FROM, written at OFF
# into IMG and into the model IMG.model (a raw file, for the expected bytes).
w() {
	tail -c +"$4" rand.bin | head -c "$3" >chunk.bin
	"$VHDTOOL" write "$1" "$2" "$3" <chunk.bin || fail "vhdtool write $1 $2 $3"
	dd if=chunk.bin of="$1.model" bs=1M oflag=seek_bytes seek="$2" \
		conv=notrunc status=none
}

M=1048576
# Fixed and dynamic, sizes that are not CHS products (libvhdi reads the
# footer's size).
"$VHDTOOL" create -t fixed fixed.vhd $((5 * M + 512))
"$VHDTOOL" create -t dynamic base.vhd $((10 * M + 512))
truncate -s $((5 * M + 512)) fixed.vhd.model
truncate -s $((10 * M + 512)) base.vhd.model
w fixed.vhd 1001 5000 1
w base.vhd 0 3000000 1                  # blocks 0 and 1
w base.vhd $((6 * M - 7)) 20000 11      # across blocks 2/3
w base.vhd $((10 * M)) 512 99           # the last, partial block
"$VHDTOOL" create --parent base.vhd child.vhd
cp base.vhd.model child.vhd.model
# Child: unaligned writes inside and across 4 KiB granules, over parent
# data and over parent zeros, and across a block boundary.
w child.vhd 100 1 5
w child.vhd 4095 2 17
w child.vhd 12345 9000 123
w child.vhd $((2 * M - 3000)) 6001 777  # across blocks 0/1
w child.vhd $((5 * M + 1)) 511 4000     # over parent zeros
w child.vhd $((10 * M + 100)) 13 9      # last partial block

for img in fixed.vhd base.vhd child.vhd; do
	size=$("$VHDTOOL" info --json "$img" | head -n1 |
		sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
	out=$(vhdiinfo "$img") || fail "vhdiinfo rejects $img: $out"
	media=$(info_line "$img" "Media size")
	case $media in
	*"($size bytes)") ;;
	*) fail "$img: vhdiinfo media size '$media', expected $size bytes" ;;
	esac
	id=$(info_line "$img" "Identifier")
	[ "$id" = "$(uuid_of "$img")" ] || fail "$img: vhdiinfo identifier $id"
	echo "ok: vhdiinfo $img ($size bytes)"
done
[ "$(info_line fixed.vhd "Disk type")" = Fixed ] || fail "fixed.vhd: disk type"
[ "$(info_line base.vhd "Disk type")" = Dynamic ] || fail "base.vhd: disk type"
[ "$(info_line child.vhd "Disk type")" = Differential ] || fail "child.vhd: disk type"
pid=$(info_line child.vhd "Parent identifier")
[ "$pid" = "$(uuid_of base.vhd)" ] ||
	fail "child.vhd: vhdiinfo parent identifier $pid, base is $(uuid_of base.vhd)"
[ "$(info_line child.vhd "Parent filename")" = base.vhd ] ||
	fail "child.vhd: vhdiinfo parent filename"
echo "ok: vhdiinfo parent identifier and file name"

# ---- vhdimount ----
requires vhdimount
[ -c /dev/fuse ] || skip "/dev/fuse missing (vhdiinfo checks passed)"
mkdir "$mnt"
# vhdimount finds the parent by the header's parent name in the folder of
# the child as given on the command line: run it beside the files.
if ! timeout 30 vhdimount child.vhd mnt >vhdimount.log 2>&1 ||
   ! mountpoint -q "$mnt"; then
	skip "vhdimount could not mount (vhdiinfo checks passed): $(tail -n 1 vhdimount.log)"
fi
top=$(ls "$mnt" | sort -V | tail -n 1)
[ "$(ls "$mnt" | wc -l)" = 2 ] || fail "vhdimount shows $(ls "$mnt" | tr '\n' ' ') for a two-level chain"
size=$((10 * M + 512))
"$VHDTOOL" read child.vhd 0 $size >child.raw
"$VHDTOOL" read base.vhd 0 $size >base.raw
# What was written (the model), what vhdtool reads, what libvhdi reads.
"$VHDTOOL" read fixed.vhd 0 $((5 * M + 512)) | cmp - fixed.vhd.model ||
	fail "vhdtool reads fixed.vhd wrong"
cmp child.vhd.model child.raw || fail "vhdtool reads child.vhd wrong"
cmp base.vhd.model base.raw || fail "vhdtool reads base.vhd wrong"
cmp child.raw "$mnt/$top" || fail "libvhdi reads child.vhd ($top) differently"
cmp base.raw "$mnt/vhdi1" || fail "libvhdi reads base.vhd (vhdi1) differently"
cmp -s child.raw base.raw && fail "child and base read the same: writes lost"
umount "$mnt" || fusermount -u "$mnt" || fail "cannot unmount $mnt"
echo "ok: vhdimount reads the chain as vhdtool does"
