#!/bin/bash
# Size rules: a qemu-made image ("qemu" creator) whose footer current size
# is edited to differ from its CHS size is served with the CHS size, like
# qemu-img reports; --size-from current / chs override that; an image of
# another creator uses the current size.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires qemu-img python3
vsize() { "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }

# Rewrite current size (and creator, if given) in both footers, fixing checksums.
patch_footer() {
	python3 - "$1" "$2" "${3:-}" <<'PY'
import struct, sys
path, size, creator = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = bytearray(open(path, 'rb').read())
for off in (0, len(data) - 512):
    ft = data[off:off + 512]
    ft[48:56] = struct.pack('>Q', size)
    if creator:
        ft[28:32] = creator.encode()
    ft[64:68] = b'\0' * 4
    ft[64:68] = struct.pack('>I', ~sum(ft) & 0xffffffff)
    data[off:off + 512] = ft
open(path, 'wb').write(data)
PY
}

qemu-img create -q -f vpc "$dir/q.vhd" 10000000 || fail "qemu-img create"
chs=$(vsize qemu-img info --output=json -f vpc "$dir/q.vhd")
patch_footer "$dir/q.vhd" 10485760
[ "$(vsize qemu-img info --output=json -f vpc "$dir/q.vhd")" = "$chs" ] || fail "qemu changed its mind"
got=$(vsize "$T" info --json "$dir/q.vhd") || fail "info"
[ "$got" = "$chs" ] || fail "default size $got, qemu says $chs"
got=$(vsize "$T" --size-from current info --json "$dir/q.vhd")
[ "$got" = 10485760 ] || fail "--size-from current gave $got"
got=$(vsize "$T" --size-from=chs info --json "$dir/q.vhd")
[ "$got" = "$chs" ] || fail "--size-from chs gave $got"
# The override reaches reads: the last byte of the larger size is readable.
"$T" --size-from current read "$dir/q.vhd" 10485759 1 >/dev/null || fail "read with override"
"$T" read "$dir/q.vhd" 10485759 1 >/dev/null 2>&1 && fail "read past the CHS size succeeded"

# Hyper-V's creator: current size wins, as in qemu.
patch_footer "$dir/q.vhd" 10485760 "win "
[ "$(vsize "$T" info --json "$dir/q.vhd")" = 10485760 ] || fail "win creator"
[ "$(vsize qemu-img info --output=json -f vpc "$dir/q.vhd")" = 10485760 ] || fail "qemu win creator"
"$T" --size-from bogus info "$dir/q.vhd" 2>/dev/null; [ $? = 2 ] || fail "bad --size-from accepted"
echo "size rules agree with qemu-img"
