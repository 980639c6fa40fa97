#!/bin/bash
# A live backup's VMM side with the built-in guest's VSS service: records
# runs on two dynamic VHDs (LUNs 0, 1) and a raw file (LUN 2);
# `backup-snapshot` over the control socket freezes the guest (it stops
# writing, flushes every LUN, answers FREEZE), snapshots every writable VHD
# LUN (not the raw file) at one point in time and thaws it: the answer says
# "application" with the window and hold times and each disk's frozen
# image, child and frozen tracking file (the LUNs start being tracked).  The guest reports the freeze, the thaw and its write
# stall, and never an I/O error.  The frozen images hold every record the
# guest flushed before it answered FREEZE (checked with check-records while
# the VMM still runs), and stay unchanged while the guest writes on; then
# `merge` folds each child back (chain back to the image, child gone), the
# guest keeps writing, and after quit every record checks clean.
# VMM_USER_MODE=1: the user-mode backend (test-vmm-vss-backup-usermode.sh).
. "$(dirname "$0")/vmm-common.bash"
requires_kvm
requires python3

a=$dir/a.vhd b=$dir/b.vhd raw=$dir/raw.img
"$VHDTOOL" create "$a" 32M >/dev/null || fail "create a"
"$VHDTOOL" create "$b" 32M >/dev/null || fail "create b"
truncate -s 16M "$raw" || fail "create raw"
start_vmm --mem 64M --timeout 40 --workload records,flush_ms=100 \
	--disk "$a,lun=0" --disk "$b,lun=1" --disk "$raw,lun=2" --control "$dir/c.sock"
wait_console 15 'records: flushed 0:[0-9]+ 1:[0-9]+ 2:[0-9]+' || fail "no records on three LUNs"
wait_console 10 'vss: channel [0-9]+ open \(mode on\)' || fail "the guest did not open the VSS channel"

ans=$(ctl "$dir/c.sock" '{"cmd":"backup-snapshot","freeze_timeout":10000}')
echo "$ans" | grep -q '^{"ok":true,"consistency":"application","why":"","window_us":[0-9]*,"held_us":[0-9]*,"disks":\[' ||
	fail "backup-snapshot: $ans"
echo "$ans" | grep -q "{\"lun\":0,\"frozen\":\"$a\",\"child\":\"$dir/a-snap1.vhd\",\"ctk\":\"$dir/a-snap1.vhd.frozen.ctk\"},{\"lun\":1,\"frozen\":\"$b\",\"child\":\"$dir/b-snap1.vhd\",\"ctk\":\"$dir/b-snap1.vhd.frozen.ctk\"}\]}$" ||
	fail "disks in the answer (the raw LUN 2 must be left out): $ans"
[ -f "$dir/a-snap1.vhd" ] && [ -f "$dir/b-snap1.vhd" ] || fail "no child files"
# untracked LUNs start being tracked at their first live backup
[ -f "$a.ctk" ] && [ -f "$b.ctk" ] || fail "no IMAGE.ctk after the first live backup"
[ -s "$dir/a-snap1.vhd.frozen.ctk" ] && [ -s "$dir/b-snap1.vhd.frozen.ctk" ] ||
	fail "no frozen tracking files"
window=$(echo "$ans" | sed 's/.*"window_us":\([0-9]*\).*/\1/')
held=$(echo "$ans" | sed 's/.*"held_us":\([0-9]*\).*/\1/')
[ "$window" -gt 0 ] && [ "$held" -gt 0 ] && [ "$held" -le "$window" ] ||
	fail "window $window us, held $held us"
wait_console 10 'records: vss: thawed \(freeze 1\)' || fail "the guest reported no thaw"
grep -q 'vss: negotiated framework 3.0, VSS 5.0' "$dir/err" || fail "no negotiation"
grep -q 'records: vss: frozen (freeze 1): writes stopped, every LUN flushed' "$dir/err" ||
	fail "the guest reported no freeze"
grep -q 'vss: THAW after [0-9]* us frozen' "$dir/err" || fail "no THAW"
grep -Eq 'records: vss: thawed \(freeze 1\): [0-9]+ records read while frozen, writes stalled [0-9]+ us, longest stall [0-9]+ us' \
	"$dir/err" || fail "no stall report"

# what the guest flushed just before it answered FREEZE is in the frozen images
line=$(grep -B1 'records: vss: frozen (freeze 1)' "$dir/err" | grep 'records: flushed' | tail -n 1)
[ -n "$line" ] || fail "no flush before the freeze"
fa=$(echo "$line" | sed 's/.* 0:\([0-9]*\).*/\1/')
fb=$(echo "$line" | sed 's/.* 1:\([0-9]*\).*/\1/')
[ "$fa" -gt 0 ] && [ "$fb" -gt 0 ] || fail "flushed before the freeze: '$line'"
"$VMM" check-records "$a,flushed=$fa" "$b,flushed=$fb" >"$dir/frozen-check" 2>&1 ||
	{ cat "$dir/frozen-check"; fail "the frozen images lack records flushed before the freeze"; }
sum_a=$(sha256sum <"$a")
sum_b=$(sha256sum <"$b")

# the guest writes on, into the children
f0=$(flushed 0)
for _ in $(seq 50); do [ "$(flushed 0)" -gt "$f0" ] && break; sleep 0.1; done
[ "$(flushed 0)" -gt "$f0" ] || fail "no records after the backup snapshot"
[ "$(sha256sum <"$a")" = "$sum_a" ] && [ "$(sha256sum <"$b")" = "$sum_b" ] ||
	fail "a frozen image changed after the snapshot"

ans=$(ctl "$dir/c.sock" '{"cmd":"merge","lun":0}' '{"cmd":"merge","lun":1}')
echo "$ans" | sed -n 1p | grep -q "\"ok\":true,\"lun\":0,\"into\":\"$a\"" || fail "merge 0: $ans"
echo "$ans" | sed -n 2p | grep -q "\"ok\":true,\"lun\":1,\"into\":\"$b\"" || fail "merge 1: $ans"
[ -f "$dir/a-snap1.vhd" ] || [ -f "$dir/b-snap1.vhd" ] && fail "a child is still there after the merge"
[ -e "$dir/a-snap1.vhd.frozen.ctk" ] || [ -e "$dir/b-snap1.vhd.frozen.ctk" ] &&
	fail "a frozen tracking file is still there after the merge"
f1=$(flushed 0)
for _ in $(seq 50); do [ "$(flushed 0)" -gt "$f1" ] && break; sleep 0.1; done
[ "$(flushed 0)" -gt "$f1" ] || fail "no records after the merge"
ans=$(ctl "$dir/c.sock" '{"cmd":"disks"}' '{"cmd":"quit"}')
echo "$ans" | sed -n 1p | grep -q "\"top\":\"$a\",\"snapshots\":0.*\"top\":\"$b\",\"snapshots\":0" ||
	fail "disks after the merges: $ans"
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after quit"
grep -q "records: stopped: .* 0 mismatches, 0 I/O errors, 1 freezes, 1 thaws, longest stall" "$dir/err" ||
	fail "guest did not stop cleanly"
grep -q "records: lun .* failed" "$dir/err" && fail "the guest saw an I/O error"
check_records "$a" 0
check_records "$b" 1
check_records "$raw" 2
grep -h "records: vss: thawed\|records: stopped" "$dir/err" | sed 's/^/  /'
echo "  window ${window} us, held ${held} us"
echo ok
