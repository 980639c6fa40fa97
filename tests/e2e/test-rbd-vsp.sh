#!/bin/bash
# Ceph RBD images behind the storage VSP and the iSCSI target, on a real
# single-node cluster (tests/ceph-cluster.bash):
#  - vmm-mini host --disk rbd:POOL/IMG,lun=3: a storvsc client process
#    scans (the image's size), writes a pattern and reads it back; a new
#    host serves the same bytes back (they are in the image);
#  - vmm-mini run (user-mode backend) with two RBD LUNs runs the records
#    workload; SIGTERM, then every record is verified from the host through
#    librbd (check-records rbd:...); a backup taken while the guest writes
#    (from an RBD snapshot) restores to records at least up to what the
#    guest saw flushed before it began;
#  - vhdtool serve --iscsi of an RBD image: qemu-img (iscsi://) reads what
#    the image holds, qemu-io writes that vhdtool then reads from the image;
#    --snapshot is refused with a pointer to @SNAP;
#  - rbd:POOL/NAMESPACE/IMAGE as qemu spells it: written by vhdtool, read by
#    qemu-img's rbd driver and by the rbd tool in that namespace.
set -u
. "$(dirname "$0")/vmm-common.bash"
. "$(dirname "$0")/../ceph-cluster.bash"
V=${VHDTOOL:?}
CL=$BUILD/tests/helpers/storvsc-client
[ -x "$CL" ] || fail "$CL not built"
requires qemu-img qemu-io python3
qemu-img --help | grep -qw rbd || skip "qemu-img has no rbd driver (qemu-block-extra)"
hpid=
at_exit '[ -n "$hpid" ] && kill -9 "$hpid" 2>/dev/null'
ceph_cluster_start "$dir/ceph"
conf=":conf=$CEPH_CONF"
T() { timeout -k 5 120 "$@"; }

# ---- vmm-mini host: a client process on LUN 3 ----
T rbd create --size 32M rbd/h >/dev/null 2>&1 || fail "rbd create"
host() {   # start vmm-mini host on the image as LUN 3
	rm -f "$dir/s.sock"
	"$VMM" host --listen "$dir/s.sock" --disk "rbd:rbd/h$conf,lun=3" 2>>"$dir/host.log" &
	hpid=$!
	for _ in $(seq 300); do [ -S "$dir/s.sock" ] && break; kill -0 $hpid 2>/dev/null || break; sleep 0.1; done
	[ -S "$dir/s.sock" ] || { cat "$dir/host.log"; fail "vmm-mini host on rbd: did not start"; }
}
host_stop() {
	local rc
	kill -TERM "$hpid"
	for _ in $(seq 200); do kill -0 "$hpid" 2>/dev/null || break; sleep 0.05; done
	wait "$hpid"; rc=$?; hpid=
	[ "$rc" = 0 ] || { cat "$dir/host.log"; fail "vmm-mini host exited $rc after SIGTERM"; }
}
host
out=$(T "$CL" "$dir/s.sock" scan) || fail "scan: $out"
echo "$out" | grep -q "^lun 3 33554432$" || fail "scan of the RBD LUN: $out"
T "$CL" "$dir/s.sock" verify 3 5 8 >/dev/null || fail "pattern on the RBD LUN"
host_stop
host
T "$CL" "$dir/s.sock" check 3 5 8 >/dev/null || fail "the pattern is not in the RBD image"
host_stop

# ---- vmm-mini run: the records workload on two RBD LUNs ----
T rbd create --size 32M rbd/r0 >/dev/null 2>&1 || fail "rbd create r0"
T rbd create --size 16M rbd/r1 >/dev/null 2>&1 || fail "rbd create r1"
VMM_USER_MODE=1
USER_MODE_ARG=(--user-mode)
start_vmm --mem 64M --timeout 60 --workload records,flush_ms=200 \
	--disk "rbd:rbd/r0$conf,lun=0" --disk "rbd:rbd/r1$conf,lun=1"
wait_console 50 'records: flushed 0:[0-9]+ 1:[0-9]+' || fail "no flushed records on the RBD LUNs"
# A backup of LUN 0 while the guest writes it (the VMM holds the image's
# exclusive lock): it reads a snapshot, which holds at least every record
# the guest saw flushed before the backup began.
f0=$(flushed 0)
T "$V" backup init "$dir/repo" >/dev/null || fail "backup init"
bid=$(T "$V" backup create "$dir/repo" "rbd:rbd/r0$conf" 2>"$dir/bkp.err") ||
	fail "backup of a running VM's RBD disk: $(cat "$dir/bkp.err")"
sleep 1
stop_vmm TERM
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after SIGTERM"
grep -q "records: stopped: .* 0 mismatches, 0 I/O errors" "$dir/err" || fail "guest did not stop cleanly"
for l in 0 1; do [ "$(flushed $l)" -gt 0 ] || fail "LUN $l: nothing flushed"; done
check_records "rbd:rbd/r0$conf" 0
check_records "rbd:rbd/r1$conf" 1
T "$V" backup restore -O raw "$dir/repo" "$bid" "$dir/r0-bkp.raw" >/dev/null || fail "restore"
"$VMM" check-records "$dir/r0-bkp.raw,flushed=$f0" >>"$dir/check" 2>&1 ||
	{ cat "$dir/check"; fail "the backup taken while the guest ran lacks flushed records"; }
grep -h "records," "$dir/check" | sed 's/^/  /'

# ---- vhdtool serve --iscsi of an RBD image ----
if command -v iscsi-inq >/dev/null && qemu-img --help | grep -q '^Supported formats:.* iscsi'; then
	IQN=iqn.2024-01.local.vhdtool:rbd
	"$V" serve --iscsi --port 0 --target-name $IQN "rbd:rbd/r0$conf" >"$dir/serve.out" 2>"$dir/serve.err" &
	spid=$!
	for _ in $(seq 400); do grep -q '^serving' "$dir/serve.out" 2>/dev/null && break; kill -0 $spid 2>/dev/null || break; sleep 0.05; done
	port=$(sed -n '1s|.* at iscsi://127.0.0.1:\([0-9]*\)/.*|\1|p' "$dir/serve.out")
	[ -n "$port" ] || { cat "$dir/serve.err"; fail "serve --iscsi of rbd: did not start"; }
	url=iscsi://127.0.0.1:$port/$IQN/0
	T iscsi-inq "$url" | grep -q 'Peripheral Device Type:DIRECT_ACCESS' || fail "iscsi-inq"
	T qemu-img convert -f raw -O raw "$url" "$dir/iscsi.raw" || fail "qemu-img convert from iSCSI"
	T qemu-io -f raw -c "write -P 0x3c 5m 192k" "$url" >/dev/null || fail "qemu-io write over iSCSI"
	kill -TERM $spid; wait $spid || fail "serve --iscsi exited $? after SIGTERM"
	T "$V" read "rbd:rbd/r0$conf" 0 32M >"$dir/r0.raw" || fail "read r0"
	python3 - "$dir" <<'PY' || fail "iSCSI read or write differs from the RBD image"
import sys
d = sys.argv[1]
got = open(d + '/r0.raw', 'rb').read()
before = bytearray(open(d + '/iscsi.raw', 'rb').read())
before[5 << 20:(5 << 20) + 192 * 1024] = b'\x3c' * (192 * 1024)
assert got == bytes(before)
PY
else
	echo "  (iSCSI part skipped: iscsi-inq or qemu's iscsi driver missing)"
fi
rc=0; "$V" serve --iscsi --port 0 --snapshot "rbd:rbd/r0$conf" >/dev/null 2>"$dir/snap.err" || rc=$?
[ "$rc" = 1 ] && grep -q "@SNAP" "$dir/snap.err" || fail "serve --snapshot of rbd: $rc $(cat "$dir/snap.err")"

# ---- namespaces: rbd:POOL/NAMESPACE/IMAGE ----
T rbd namespace create rbd/tenant1 >/dev/null 2>&1 || fail "rbd namespace create"
head -c 3M /dev/urandom >"$dir/ns.bin"
truncate -s 8M "$dir/ns.bin"
T "$V" convert "$dir/ns.bin" "rbd:rbd/tenant1/img$conf" >/dev/null 2>"$dir/err" || fail "convert into a namespace"
T rbd ls rbd/tenant1 | grep -qx img || fail "the image is not in namespace tenant1"
T rbd ls rbd | grep -qx img && fail "the image landed outside the namespace"
T qemu-img compare -f raw "$dir/ns.bin" -F raw "rbd:rbd/tenant1/img$conf" >/dev/null ||
	fail "qemu-img reads another image at rbd:rbd/tenant1/img"
echo "rbd: VSP LUN (host and run), iSCSI, namespaces: fine"
