#!/bin/bash
# kill -9 of vmm-mini at random moments during live merges (TRIALS, 10 by
# default): the guest writes records while a driver snapshots LUN 0 and
# merges it back, again and again; the kill lands a random 0-1 s after
# a merge was asked for (every other trial with VMM_TEST_MERGE_DELAY_US,
# a pause after each MiB copied, so kills land anywhere in the copy and
# the held step).  Afterwards every file checks clean, and every record
# the guest saw flushed is there: in the child's chain when the child is
# still there (then the offline `vhdtool merge` of the child completes
# the merge and the records are checked again on the image), else in the
# image alone.
# The user-mode backend unless VMM_USER_MODE=0 (then KVM).
export VMM_USER_MODE=${VMM_USER_MODE:-1}
. "$(dirname "$0")/../e2e/vmm-common.bash"
KILLED=1   # check_records: leaked space after a kill -9 is allowed
requires_kvm
requires python3
TRIALS=${TRIALS:-10}

# driver SOCKET: snapshot, wait, merge... until the VMM is gone; a line
# per step in $dir/driver.log ("merging" before a merge is sent).
driver() {
	"$PY3" - "$1" >"$dir/driver.log" 2>&1 <<'PY' &
import random, socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(100):
    try:
        s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.05)
f = s.makefile("rw")
def q(x):
    f.write(x + "\n"); f.flush()
    a = f.readline().strip()
    if not a:
        raise SystemExit("gone")
    return a
try:
    while True:
        print("snapshot", q('{"cmd":"snapshot","lun":0}'), flush=True)
        time.sleep(random.uniform(0.3, 0.8))
        print("merging", flush=True)
        print("merged", q('{"cmd":"merge","lun":0}'), flush=True)
        time.sleep(random.uniform(0.1, 0.4))
except (OSError, SystemExit):
    print("gone", flush=True)
PY
	dpid=$!
}

img=$dir/a.vhd
child=$dir/a-snap1.vhd
in_merge=0
gone=0
for t in $(seq "$TRIALS"); do
	rm -f "$dir"/*.vhd "$dir"/*.ctk "$dir/check"
	"$VHDTOOL" create "$img" 64M >/dev/null || fail "create"
	delay=0
	[ $((t % 2)) = 0 ] && delay=30000
	VMM_TEST_MERGE_DELAY_US=$delay start_vmm --mem 64M --timeout 60 \
		--workload records,flush_ms=50,progress_ms=0,slots=16384,batch=32,qd=8 \
		--disk "$img,lun=0" --control "$dir/c.sock"
	wait_console 15 'records: flushed 0:[0-9]+' || fail "trial $t: no records"
	driver "$dir/c.sock"
	want=$((RANDOM % 2 + 1))
	for _ in $(seq 300); do
		[ "$(grep -c '^merging' "$dir/driver.log")" -ge "$want" ] && break
		sleep 0.05
	done
	grep -q '^merging' "$dir/driver.log" || fail "trial $t: the driver never merged: $(cat "$dir/driver.log")"
	sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
	stop_vmm 9 2>/dev/null
	[ "$rc" = 137 ] || fail "trial $t: vmm-mini exited $rc, not killed"
	wait "$dpid" 2>/dev/null
	grep '^merged' "$dir/driver.log" | grep -v '"ok":true' && fail "trial $t: a merge failed"
	last=$(grep -E '^(snapshot|merging|merged)' "$dir/driver.log" | tail -n 1)
	[ "${last%% *}" = merging ] && in_merge=$((in_merge + 1))
	if [ -e "$child" ]; then
		# leaked space (exit 3: a block written whose BAT entry was not
		# yet) is what a kill of a writer may leave; never corruption
		crc=0
		"$VHDTOOL" check "$child" >>"$dir/check" 2>&1 || crc=$?
		[ "$crc" = 0 ] || [ "$crc" = 3 ] || { cat "$dir/check"; fail "trial $t: check $child exited $crc"; }
		check_records "$child" 0
		"$VHDTOOL" merge "$child" >>"$dir/check" 2>&1 || { cat "$dir/check"; fail "trial $t: offline merge"; }
		[ -e "$child" ] && fail "trial $t: the offline merge left the child"
		where="child, merged offline"
	else
		where="image"
		gone=$((gone + 1))
	fi
	check_records "$img" 0
	echo "trial $t (delay $delay us): killed after '${last%% *}', records in the $where: flushed $(flushed 0), found $(sed -n 's/.*highest sequence \([0-9]*\).*/\1/p' "$dir/check" | paste -sd/)"
done
echo "killed while a merge was running in $in_merge of $TRIALS trials; no child left (merged, or killed after the unlink) in $gone"
echo ok
