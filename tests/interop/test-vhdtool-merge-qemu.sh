#!/bin/bash
# vhdtool merge: a child into its parent, two levels at once (--into), into
# a fixed ancestor, --keep, a grown child; the result compared through
# qemu-img compare with bytes built independently (dd); refusal when another
# child depends on a file the merge changes or removes, unless --force; bad
# arguments.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires qemu-img vhdiinfo
cd "$dir"

# w IMAGE OFFSET LENGTH [zero]: the same bytes into the image and expect.raw
w() {
	if [ "${4:-}" = zero ]; then head -c "$3" /dev/zero > piece; else head -c "$3" /dev/urandom > piece; fi
	"$T" write "$1" "$2" < piece || fail "write $1 $2"
	dd if=piece of=expect.raw oflag=seek_bytes seek="$2" conv=notrunc status=none
}
# chain TYPE: base (TYPE) <- mid <- top, 12 MiB, 512 KiB blocks
chain() {
	rm -f base.vhd mid.vhd top.vhd sib.vhd expect.raw
	truncate -s 12M expect.raw
	if [ "$1" = fixed ]; then "$T" create -t fixed base.vhd 12M >/dev/null
	else "$T" create --block-size 512K base.vhd 12M >/dev/null; fi || fail "create base"
	w base.vhd 0 4194304
	w base.vhd 8388608 1048576
	"$T" snapshot base.vhd mid.vhd || fail "snapshot mid"
	w mid.vhd 1048576 700000
	w mid.vhd 6291456 65536
	w mid.vhd 8388608 4096 zero
	"$T" snapshot mid.vhd top.vhd || fail "snapshot top"
	w top.vhd 1000 5000
	w top.vhd 2097152 524288 zero
	w top.vhd 11534336 1048576
}

# Two levels at once into a dynamic base.
chain dynamic
"$T" merge --into base.vhd top.vhd > out || fail "merge --into: $(cat out)"
grep -q 'merged 2 layers into' out || fail "report: $(cat out)"
[ -e top.vhd ] || [ -e mid.vhd ] && fail "merged files not removed"
qemu-img compare -q -f vpc -F raw base.vhd expect.raw || fail "base differs after 2-level merge"
"$T" check base.vhd >/dev/null || fail "check base"
vhdiinfo base.vhd >/dev/null || fail "vhdiinfo base"

# One level at a time, the first with --keep: the kept child still reads
# the same.
chain dynamic
"$T" convert -O raw mid.vhd mid-before.raw || fail "export mid"
"$T" merge --keep top.vhd >/dev/null || fail "merge --keep"
[ -e top.vhd ] || fail "--keep removed the child"
"$T" convert -O raw top.vhd top-after.raw || fail "export kept child"
cmp top-after.raw expect.raw || fail "kept child reads differently"
"$T" merge top.vhd >/dev/null || fail "merge again (idempotent)"
[ -e top.vhd ] && fail "child not removed"
"$T" merge mid.vhd >/dev/null || fail "merge mid into base"
qemu-img compare -q -f vpc -F raw base.vhd expect.raw || fail "base differs after two merges"

# Into a fixed base.
chain fixed
"$T" merge --into base.vhd top.vhd >/dev/null || fail "merge into fixed"
qemu-img compare -q -f vpc -F raw base.vhd expect.raw || fail "fixed base differs"

# A grown child grows the base first.
chain dynamic
"$T" resize top.vhd 16M >/dev/null || fail "resize child"
truncate -s 16M expect.raw
w top.vhd 14680064 1048576
w top.vhd 12582900 1000
"$T" merge --into base.vhd top.vhd > out || fail "merge of a grown child"
grep -q 'grown' out || fail "report: $(cat out)"
qemu-img compare -q -f vpc -F raw base.vhd expect.raw || fail "grown base differs"
"$T" check base.vhd >/dev/null || fail "check grown base"

# Dependents: a sibling of top (child of mid) must not lose its view.
chain dynamic
"$T" snapshot mid.vhd sib.vhd || fail "snapshot sibling"
cp base.vhd base-copy.vhd
"$T" merge top.vhd 2>err && fail "merged top into mid although sib.vhd depends on mid"
grep -q 'sib.vhd depends on .*mid.vhd' err || fail "message: $(cat err)"
"$T" merge --into base.vhd --keep top.vhd 2>err && fail "merged into base under sib.vhd"
cmp base.vhd base-copy.vhd || fail "refused merge changed base"
[ -e top.vhd ] && [ -e mid.vhd ] || fail "refused merge removed files"
"$T" merge --force top.vhd >/dev/null || fail "--force"
"$T" convert -O raw mid.vhd m.raw && cmp m.raw expect.raw || fail "forced merge result"

# Wrong uses.
"$T" merge base.vhd 2>err && fail "merged a non-differencing image"
grep -q 'not a differencing' err || fail "message: $(cat err)"
chain dynamic
"$T" merge --into top.vhd top.vhd 2>err && fail "merged into itself"
"$T" create other.vhd 12M >/dev/null
"$T" merge --into other.vhd top.vhd 2>err && fail "merged into a stranger"
grep -q 'not an ancestor' err || fail "message: $(cat err)"
"$T" merge missing.vhd 2>err && fail "merged a missing file"
grep -qi 'no such file' err || fail "message: $(cat err)"
echo "merges agree with independently built bytes; dependents protected"
