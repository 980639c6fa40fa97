#!/bin/bash
# kill -9 of `vhdtool backup create --vm` at random moments (TRIALS, 12 by
# default; the kill time drawn from 0 to a measured uninterrupted run plus
# 20%) while the built-in guest writes records on a dynamic VHD.  After
# every kill:
#  - the VMM finishes on its own: its next answer comes, and the guest is
#    not left frozen (as many thaws as freezes) and keeps writing;
#  - a snapshot child left behind is merged with `vhdtool vm CTL merge 0`,
#    after which the LUN is on its image again, with no child and no
#    frozen tracking file left;
#  - the repository verifies clean (a killed backup is never visible).
# Then a complete live backup still works and restores every record
# flushed before its freeze, and after quit the image checks clean with
# every record the guest saw flushed.
# The user-mode backend unless VMM_USER_MODE=0 (then KVM).
export VMM_USER_MODE=${VMM_USER_MODE:-1}
. "$(dirname "$0")/../e2e/vmm-common.bash"
requires_kvm
[ -n "$PY3" ] || skip "python3 is not installed"
TRIALS=${TRIALS:-12}

img=$dir/a.vhd repo=$dir/repo
"$VHDTOOL" create "$img" 64M >/dev/null || fail "create"
"$VHDTOOL" backup init "$repo" >/dev/null || fail "backup init"
start_vmm --mem 64M --timeout $((60 + TRIALS * 15)) --workload records,flush_ms=100 \
	--disk "$img,lun=0" --control "$dir/c.sock"
wait_console 15 'records: flushed 0:[0-9]+' || fail "no records"
wait_console 10 'vss: channel [0-9]+ open' || fail "the guest did not open the VSS channel"

now_ms() { date +%s%3N; }
freezes() { grep -c 'records: vss: frozen (freeze' "$dir/err"; }
thaws() { grep -c 'records: vss: thawed (freeze' "$dir/err"; }
# wait_more: the guest flushed more records on LUN 0 than it had (10 s).
wait_more() {
	local f0
	f0=$(flushed 0)
	for _ in $(seq 100); do [ "$(flushed 0)" -gt "$f0" ] && return 0; sleep 0.1; done
	return 1
}
# disk_state: "TOP SNAPSHOTS" of LUN 0 (waits for the VMM to answer).
disk_state() {
	"$VHDTOOL" vm --output=json "$dir/c.sock" disks >"$dir/disks.json" 2>"$dir/vm.err" ||
		fail "$1: vm disks: $(cat "$dir/vm.err")"
	"$PY3" -c 'import json,sys; d=json.load(open(sys.argv[1]))["disks"][0]; print(d["top"], d["snapshots"])' \
		"$dir/disks.json"
}

t0=$(now_ms)
"$VHDTOOL" backup create --vm "$dir/c.sock" "$repo" >/dev/null 2>"$dir/b.err" ||
	fail "uninterrupted backup: $(cat "$dir/b.err")"
span=$(( ($(now_ms) - t0) * 12 / 10 ))
echo "  an uninterrupted live backup: kills within ${span} ms"

left=0
for t in $(seq "$TRIALS"); do
	delay=$((RANDOM % span))
	"$VHDTOOL" backup create --vm "$dir/c.sock" "$repo" >/dev/null 2>"$dir/b.err" &
	bpid=$!
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -9 "$bpid" 2>/dev/null
	wait "$bpid" 2>/dev/null
	state=$(disk_state "trial $t")
	case $state in
	"$img 0") ;;
	"$img 1"|"$dir/a-snap1.vhd 1")
		left=$((left + 1))
		"$VHDTOOL" vm "$dir/c.sock" merge 0 >"$dir/vm.out" 2>&1 ||
			fail "trial $t (kill at $delay ms): merge of what was left: $(cat "$dir/vm.out")"
		[ "$(disk_state "trial $t")" = "$img 0" ] || fail "trial $t: after the merge: $(cat "$dir/disks.json")" ;;
	*)	fail "trial $t (kill at $delay ms): LUN 0 is '$state'" ;;
	esac
	ls "$dir" | grep -q 'snap\|frozen' && fail "trial $t: left behind: $(ls "$dir")"
	for _ in $(seq 100); do [ "$(freezes)" = "$(thaws)" ] && break; sleep 0.1; done
	[ "$(freezes)" = "$(thaws)" ] || fail "trial $t: the guest was left frozen ($(freezes) freezes, $(thaws) thaws)"
	wait_more || fail "trial $t (kill at $delay ms): the guest stopped writing"
	"$VHDTOOL" backup verify "$repo" >"$dir/verify" 2>&1 ||
		fail "trial $t (kill at $delay ms): the repository does not verify: $(cat "$dir/verify")"
done
echo "  $TRIALS kills, $left left a snapshot child to merge"

# a complete live backup after all that, restored and checked
n=$(freezes)
"$VHDTOOL" backup create --vm "$dir/c.sock" --output=json "$repo" >"$dir/last.json" 2>"$dir/b.err" ||
	fail "the last backup: $(cat "$dir/b.err")"
id=$("$PY3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["disks"][0]["backup"]["id"])' "$dir/last.json")
line=$(grep -B1 "records: vss: frozen (freeze $((n + 1)))" "$dir/err" | grep 'records: flushed' | tail -n 1)
f=$(echo "$line" | sed -n 's/.* 0:\([0-9]*\).*/\1/p')
[ -n "$f" ] || fail "no flush before the last freeze"
"$VHDTOOL" backup restore "$repo" "$id" "$dir/r.raw" || fail "restore"
"$VMM" check-records "$dir/r.raw,flushed=$f" >"$dir/rcheck" 2>&1 ||
	{ cat "$dir/rcheck"; fail "the last backup lacks records flushed before its freeze"; }

"$VHDTOOL" vm "$dir/c.sock" quit >/dev/null || fail "vm quit"
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after quit"
grep -q "records: stopped: .* 0 mismatches, 0 I/O errors" "$dir/err" || fail "the guest did not stop cleanly"
check_records "$img" 0
"$VHDTOOL" backup verify "$repo" >"$dir/verify" 2>&1 || fail "final verify: $(cat "$dir/verify")"
echo ok
