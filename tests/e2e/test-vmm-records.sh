#!/bin/bash
# The built-in guest drives the whole storage path (guest -> VMBus rings in
# its RAM -> storvsp -> scsi -> bdev -> VHD): the records workload on a
# dynamic VHD (LUN 0), a 3-level differencing chain (LUN 1) and a fixed
# VHD (LUN 2) at once, stopped with SIGTERM (the guest completes its I/O,
# flushes, exits; the VMM exits 0); then every record is verified from the
# host, at least up to what the guest saw flushed, and every image checks
# clean; the chain's lower levels are untouched.  VMM_USER_MODE=1 runs it on
# the user-mode backend (test-vmm-records-usermode.sh).
. "$(dirname "$0")/vmm-common.bash"
requires_kvm
requires python3

"$VHDTOOL" create "$dir/dyn.vhd" 64M >/dev/null || fail "create dynamic"
"$VHDTOOL" create -t fixed "$dir/fixed.vhd" 32M >/dev/null || fail "create fixed"
"$VHDTOOL" create "$dir/base.vhd" 48M >/dev/null || fail "create base"
"$VHDTOOL" create -p "$dir/base.vhd" "$dir/mid.vhd" >/dev/null || fail "create mid"
"$VHDTOOL" create -p "$dir/mid.vhd" "$dir/top.vhd" >/dev/null || fail "create top"
sum_base=$(sha256sum <"$dir/base.vhd")
sum_mid=$(sha256sum <"$dir/mid.vhd")

start_vmm --mem 64M --timeout 25 --workload records,flush_ms=200 \
	--disk "$dir/dyn.vhd,lun=0" --disk "$dir/top.vhd,lun=1" --disk "$dir/fixed.vhd,lun=2"
wait_console 15 'records: flushed 0:[0-9]+ 1:[0-9]+ 2:[0-9]+' || fail "no flushed records on three LUNs"
sleep 1
stop_vmm TERM
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after SIGTERM"
grep -q "records: stopped: .* 0 mismatches, 0 I/O errors" "$dir/err" || fail "guest did not stop cleanly"
grep -q "vmbus: version 5.2" "$dir/err" || fail "VMBus version fallback (5.3 refused)"
grep -q "storvsc: protocol 6.2" "$dir/err" || fail "vstor protocol"
for l in 0 1 2; do [ "$(flushed $l)" -gt 0 ] || fail "LUN $l: nothing flushed"; done
check_records "$dir/dyn.vhd" 0
check_records "$dir/top.vhd" 1
check_records "$dir/fixed.vhd" 2
[ "$(sha256sum <"$dir/base.vhd")" = "$sum_base" ] || fail "base of the chain written"
[ "$(sha256sum <"$dir/mid.vhd")" = "$sum_mid" ] || fail "middle of the chain written"
grep -h "records," "$dir/check" | sed 's/^/  /'
echo ok
