#!/bin/bash
# libiscsi's compliance suite (iscsi-test-cu, every SCSI and iSCSI family
# plus MultipathIO over two sessions) against vhdtool serve --iscsi and
# against tgt, each serving its own copy of the same 64 MiB raw file.
# Prints one line per test where the two differ, then the totals; the
# table in README.md ("iSCSI compliance") comes from this.  Not part of
# make check (two full runs take a few minutes).
#
#   bench/iscsi-compliance.sh            (VHDTOOL=build/vhdtool)
set -eu
T=${VHDTOOL:-build/vhdtool}
T=$(cd "$(dirname "$T")" && pwd)/$(basename "$T")
here=$(cd "$(dirname "$0")" && pwd)
parse=$here/../tests/interop/cu-results.py
for t in iscsi-test-cu tgtd tgtadm python3; do
	command -v $t >/dev/null || { echo "bench/iscsi-compliance.sh: $t missing, skipped"; exit 0; }
done
dir=$(mktemp -d /tmp/iscsi-compliance.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && { kill "$pid"; sleep 0.3; kill -KILL "$pid"; wait "$pid"; } 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
run_cu() {   # NAME URL
	timeout 900 iscsi-test-cu -d --dataloss -t SCSI "$2" >"$1.scsi" 2>&1 || true
	timeout 600 iscsi-test-cu -d --dataloss -t iSCSI "$2" >"$1.iscsi" 2>&1 || true
	timeout 300 iscsi-test-cu -d --dataloss -t ALL.MultipathIO "$2" "$2" >"$1.mpio" 2>&1 || true
	cat "$1".scsi "$1".iscsi "$1".mpio >"$1.txt"
	# MultipathIO counts from its two-session run only: the one-session
	# SCSI run lists the same tests (as skips), and duplicate names would
	# pair every result of one target with every result of the other.
	{ python3 "$parse" "$1.scsi" | grep -v '^MultipathIO\.'
	  python3 "$parse" "$1.iscsi"; python3 "$parse" "$1.mpio"; } | sort >"$1.res"
}

truncate -s 64M ours.img tgt.img
"$T" serve --iscsi --port 0 ours.img >serve.out 2>serve.err &
pid=$!
for _ in $(seq 100); do grep -q '^serving' serve.out 2>/dev/null && break; sleep 0.05; done
run_cu ours "$(sed -n '1s/.* at //p' serve.out)"
kill "$pid"; wait "$pid" || true; pid=

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ctl=$((port % 20000 + 1000))   # tgtd -C: a small number
tgtd -f -C "$ctl" --iscsi portal=127.0.0.1:"$port" >tgt.log 2>&1 &
pid=$!
for _ in $(seq 100); do tgtadm -C "$ctl" --lld iscsi --op show --mode target >/dev/null 2>&1 && break; sleep 0.05; done
iqn=iqn.2024-01.local.tgt:compliance
tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T $iqn
tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$dir/tgt.img"
tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
run_cu tgt "iscsi://127.0.0.1:$port/$iqn/1"

echo "| test | ours | tgt |"
echo "|---|---|---|"
join ours.res tgt.res | awk '$2 != $3 { print "| " $1 " | " $2 " | " $3 " |" }'
for s in ours tgt; do
	echo "$s: $(grep -c ' pass$' $s.res) pass, $(grep -c ' fail$' $s.res) fail, $(grep -c ' skip$' $s.res) skip"
done
echo "passed by tgt, not by ours:"
join ours.res tgt.res | awk '$3 == "pass" && $2 != "pass" { print "  " $1 " (ours: " $2 ")" }'
