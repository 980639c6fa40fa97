#!/bin/bash
# vhdtool serve --iscsi with initiators nobody here wrote: iscsi-ls
# (discovery), iscsi-inq, iscsi-readcapacity16, qemu-img convert from and
# to an iscsi:// URL, qemu-io writes read back with vhdtool read, a
# differencing chain exported as a LUN reads like the chain, and two images
# are two LUNs.  Also CHAP: the right secret logs in, a wrong one does not.
set -eu
. "$(dirname "$0")/iscsi-common.bash"
requires iscsi-ls iscsi-inq iscsi-readcapacity16 qemu-img qemu-io
qemu-img --help | grep -q '^Supported formats:.* iscsi' ||
	skip "qemu-img has no iscsi driver (qemu-block-extra)"

head -c 8M /dev/urandom >"$dir/pattern"
"$V" create -t dynamic "$dir/base.vhd" 8M >/dev/null
"$V" write "$dir/base.vhd" 0 <"$dir/pattern" >/dev/null
"$V" create --parent "$dir/base.vhd" "$dir/child.vhd" >/dev/null
"$V" create -t fixed "$dir/fixed.vhd" 8M >/dev/null

serve_iscsi "$dir/child.vhd" "$dir/fixed.vhd"
iscsi-ls -s "$portal" >"$dir/ls" || fail "iscsi-ls failed"
grep -q "Target:$IQN" "$dir/ls" || fail "iscsi-ls: no target: $(cat "$dir/ls")"
grep -q 'Lun:0' "$dir/ls" && grep -q 'Lun:1' "$dir/ls" || fail "iscsi-ls: not two LUNs"
iscsi-inq "$url/0" | grep -q 'Peripheral Device Type:DIRECT_ACCESS' ||
	fail "iscsi-inq: not a disk"
iscsi-readcapacity16 "$url/1" | grep -q 'Total size:8388608' ||
	fail "iscsi-readcapacity16: not 8 MiB"

# The chain reads like the chain (the child is empty: the base's data).
qemu-img convert -f raw -O raw "$url/0" "$dir/out0" || fail "qemu-img convert from iSCSI"
cmp "$dir/out0" "$dir/pattern" || fail "the chain over iSCSI differs from its data"

# Into LUN 1, back out, and through vhdtool read after the server stopped.
qemu-img convert -n -f raw -O raw "$dir/pattern" "$url/1" || fail "qemu-img convert to iSCSI"
qemu-img convert -f raw -O raw "$url/1" "$dir/out1" || fail "qemu-img convert from LUN 1"
cmp "$dir/out1" "$dir/pattern" || fail "LUN 1 does not read back what was written"
qemu-io -f raw -c "write -P 0x5a 4096 64k" -c "write -P 0xa5 1m 1m" "$url/0" >/dev/null ||
	fail "qemu-io writes failed"
stop
"$V" read "$dir/child.vhd" 4096 65536 >"$dir/r1"
head -c 65536 /dev/zero | tr '\0' '\132' >"$dir/want1"
cmp "$dir/r1" "$dir/want1" || fail "qemu-io's first write is not in the child"
python3 - "$dir" <<'PY'
import sys
d = sys.argv[1]
m = bytearray(open(d + '/pattern', 'rb').read())
m[4096:4096 + 65536] = b'\x5a' * 65536
m[1 << 20:2 << 20] = b'\xa5' * (1 << 20)
open(d + '/model', 'wb').write(m)
PY
"$V" convert -O raw "$dir/child.vhd" "$dir/flat" >/dev/null
cmp "$dir/flat" "$dir/model" || fail "the chain after the qemu-io writes differs"

# CHAP: a good secret, a bad one.
printf 'secret-of-16-chars\n' >"$dir/secret"
serve_iscsi --chap-user alice --chap-secret-file "$dir/secret" "$dir/fixed.vhd"
iscsi-inq "iscsi://alice%secret-of-16-chars@127.0.0.1:$port/$IQN/0" >/dev/null ||
	fail "CHAP with the right secret refused"
if iscsi-inq "iscsi://alice%wrong-secret-1234@127.0.0.1:$port/$IQN/0" >/dev/null 2>&1; then
	fail "CHAP with a wrong secret accepted"
fi
if iscsi-inq "$url/0" >/dev/null 2>&1; then
	fail "no CHAP accepted on a target that requires it"
fi
stop
