#!/bin/bash
# kill -9 of the VMM at random moments while the guest writes records (10
# trials, a dynamic VHD and a fixed VHD each time): afterwards each image
# checks clean, every record on it is whole and where it belongs, and every
# record the guest saw flushed (its last "records: flushed" line) is there.
# VMM_USER_MODE=1: the user-mode backend.
. "$(dirname "$0")/vmm-common.bash"
KILLED=1   # check_records: leaked space after a kill -9 is allowed
requires_kvm
TRIALS=${TRIALS:-10}

for t in $(seq "$TRIALS"); do
	rm -f "$dir"/*.vhd "$dir/check"
	"$VHDTOOL" create "$dir/d.vhd" 32M >/dev/null || fail "create dynamic"
	"$VHDTOOL" create -t fixed "$dir/f.vhd" 8M >/dev/null || fail "create fixed"
	start_vmm --mem 64M --timeout 25 --workload records,flush_ms=50,progress_ms=0 \
		--disk "$dir/d.vhd,lun=0" --disk "$dir/f.vhd,lun=1"
	wait_console 10 'records: flushed 0:[0-9]+ 1:[0-9]+' || fail "trial $t: no records"
	# a random moment within the next 0.0-0.5 s
	sleep "0.$((RANDOM % 6))"
	stop_vmm 9 2>/dev/null
	[ "$rc" = 137 ] || fail "trial $t: vmm-mini exited $rc, not killed"
	check_records "$dir/d.vhd" 0
	check_records "$dir/f.vhd" 1
	echo "trial $t: flushed $(flushed 0) / $(flushed 1), found $(sed -n 's/.*highest sequence \([0-9]*\).*/\1/p' "$dir/check" | paste -sd/)"
done
echo ok
