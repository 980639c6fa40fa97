#!/bin/bash
# vmm-mini host end to end: a client process attaches over the vmbus
# transport with sub-channels, scans (REPORT LUNS, INQUIRY, READ CAPACITY
# 16), writes and reads back a pattern on a fixed VHD and a raw file, hot
# adds a dynamic VHD through the control socket, does I/O on it and removes
# it while I/O runs; the control socket answers errors as JSON; SIGTERM
# drains, flushes and exits 0, and the data is in the images afterwards.
set -u
T=${VHDTOOL:?}
B=${BUILD:-build}
VMM=$B/bin/vmm-mini
CL=$B/tests/helpers/storvsc-client
. "$(dirname "$0")/../lib.bash"
[ -x "$VMM" ] && [ -x "$CL" ] || skip "$VMM or $CL not built"
requires python3
fail_show "$dir/vmm.log"
pid=
at_exit '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null'

"$T" create -t fixed "$dir/fixed.vhd" 32M >/dev/null || fail "create fixed"
"$T" create "$dir/dyn.vhd" 32M >/dev/null || fail "create dynamic"
truncate -s 16M "$dir/raw.img" || fail truncate
"$VMM" host --listen "$dir/s.sock" --control "$dir/c.sock" --subchannels 2 \
	--disk "$dir/fixed.vhd,lun=0" --disk "$dir/raw.img,lun=1" 2>"$dir/vmm.log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/s.sock" ] && [ -S "$dir/c.sock" ] && break; sleep 0.05; done
[ -S "$dir/c.sock" ] || fail "vmm-mini did not start"

out=$(timeout 20 "$CL" --subchannels 2 "$dir/s.sock" scan) || fail "scan: $out"
echo "$out" | grep -q "version=0x602 channels=3" || fail "init: $out"
echo "$out" | grep -q "^lun 0 33554432$" || fail "LUN 0: $out"
echo "$out" | grep -q "^lun 1 16777216$" || fail "LUN 1: $out"
timeout 20 "$CL" --subchannels 2 "$dir/s.sock" verify 0 3 8 >/dev/null || fail "verify LUN 0"
timeout 20 "$CL" "$dir/s.sock" verify 1 4 8 >/dev/null || fail "verify LUN 1"
out=$(timeout 20 "$CL" --subchannels 2 "$dir/s.sock" hotplug "$dir/c.sock" "$dir/dyn.vhd") || fail "hotplug: $out"
echo "$out"
ans=$(python3 - "$dir/c.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
for q in ['{"cmd":"disks"}', '{"cmd":"bogus"}', '{"cmd":"disk-add","path":"/nonexistent","lun":3}']:
    f.write(q + "\n"); f.flush(); print(f.readline().strip())
PY
) || fail "control socket"
echo "$ans" | sed -n 1p | grep -q '"lun":0.*"lun":1' || fail "disks: $ans"
echo "$ans" | sed -n 2p | grep -q '"error"' || fail "unknown command: $ans"
echo "$ans" | sed -n 3p | grep -q '"error"' || fail "bad path: $ans"

kill -TERM "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
wait "$pid"; rc=$?
pid=
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after SIGTERM"
# the data is in the images: a new host serves it back
"$VMM" host --listen "$dir/s.sock" --disk "$dir/fixed.vhd" --disk "$dir/raw.img" 2>>"$dir/vmm.log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
timeout 20 "$CL" "$dir/s.sock" check 0 3 8 >/dev/null || fail "LUN 0 data after restart"
timeout 20 "$CL" "$dir/s.sock" check 1 4 8 >/dev/null || fail "LUN 1 data after restart"
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
[ "$rc" = 0 ] || fail "second vmm-mini exited $rc"
"$T" check "$dir/fixed.vhd" >/dev/null || fail "fixed.vhd damaged"
"$T" check "$dir/dyn.vhd" >/dev/null || fail "dyn.vhd damaged"
echo PASS
