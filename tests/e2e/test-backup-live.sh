#!/bin/bash
# `vhdtool backup create REPO --vm CTL` against the built-in guest writing
# records on two dynamic VHDs (LUNs 0, 1):
#  - the backup is application-consistent, one backup per disk with one
#    shared group, and both LUNs are merged back (chain = the original
#    image, no child, no frozen tracking file left);
#  - each restored image holds every record the guest flushed before it
#    answered FREEZE, none torn (vmm-mini check-records);
#  - a second live backup is incremental from the first and reads fewer
#    chunks than the disk has;
#  - SIGINT during the backup: the LUNs are merged back all the same;
#  - a LUN that already has a snapshot child is refused with the merge
#    command to run, and nothing is backed up;
#  - after quit the images check clean, every record is there, and the
#    repository verifies clean;
#  - --require-app-consistent with a guest that refuses FREEZE fails with
#    the VMM's reason, backs nothing up and leaves no child.
# VMM_USER_MODE=1: the user-mode backend (test-backup-live-usermode.sh).
. "$(dirname "$0")/vmm-common.bash"
requires_kvm
[ -n "$PY3" ] || skip "python3 is not installed"

repo=$dir/repo a=$dir/a.vhd b=$dir/b.vhd
"$VHDTOOL" create "$a" 64M >/dev/null || fail "create a"
"$VHDTOOL" create "$b" 32M >/dev/null || fail "create b"
"$VHDTOOL" backup init "$repo" >/dev/null || fail "backup init"
start_vmm --mem 64M --timeout 60 --workload records,flush_ms=100 \
	--disk "$a,lun=0" --disk "$b,lun=1" --control "$dir/c.sock"
wait_console 15 'records: flushed 0:[0-9]+ 1:[0-9]+' || fail "no records on two LUNs"
wait_console 10 'vss: channel [0-9]+ open' || fail "the guest did not open the VSS channel"
"$VHDTOOL" vm "$dir/c.sock" status >"$dir/status" 2>&1 || { cat "$dir/status"; fail "vm status"; }
grep -q '^state: running' "$dir/status" || fail "status: $(cat "$dir/status")"

# json FILE EXPR: a value of the JSON in FILE (python expression on j).
json() { "$PY3" -c "import json,sys; j=json.load(open(sys.argv[1])); print(($2))" "$1"; }

# ---- the first live backup
"$VHDTOOL" backup create --vm "$dir/c.sock" --output=json "$repo" >"$dir/b1.json" 2>"$dir/b1.err" ||
	{ cat "$dir/b1.err" "$dir/b1.json"; fail "backup create --vm"; }
[ "$(json "$dir/b1.json" 'j["consistency"], len(j["disks"])')" = "('application', 2)" ] ||
	fail "first backup: $(cat "$dir/b1.json")"
[ "$(json "$dir/b1.json" '[(d["lun"], d["merged"], d["backup"]["group"] == j["group"], d["backup"]["vm-lun"], d["backup"]["consistency"], d["backup"]["source"]) for d in j["disks"]]')" = \
  "[(0, True, True, 0, 'application', '$a'), (1, True, True, 1, 'application', '$b')]" ] ||
	fail "first backup's disks: $(cat "$dir/b1.json")"
id_a=$(json "$dir/b1.json" 'j["disks"][0]["backup"]["id"]')
id_b=$(json "$dir/b1.json" 'j["disks"][1]["backup"]["id"]')
"$VHDTOOL" vm --output=json "$dir/c.sock" disks >"$dir/disks.json" || fail "vm disks"
[ "$(json "$dir/disks.json" '[(d["top"], d["snapshots"]) for d in j["disks"]]')" = "[('$a', 0), ('$b', 0)]" ] ||
	fail "after the merges: $(cat "$dir/disks.json")"
ls "$dir" | grep -q 'snap\|frozen' && fail "left behind: $(ls "$dir")"

# what the guest flushed before it answered FREEZE is in the backups, intact
line=$(grep -B1 'records: vss: frozen (freeze 1)' "$dir/err" | grep 'records: flushed' | tail -n 1)
fa=$(echo "$line" | sed -n 's/.* 0:\([0-9]*\).*/\1/p')
fb=$(echo "$line" | sed -n 's/.* 1:\([0-9]*\).*/\1/p')
[ -n "$fa" ] && [ "$fa" -gt 0 ] && [ -n "$fb" ] && [ "$fb" -gt 0 ] ||
	fail "no flush before the freeze: '$line'"
"$VHDTOOL" backup restore "$repo" "$id_a" "$dir/ra.raw" || fail "restore a"
"$VHDTOOL" backup restore "$repo" "$id_b" "$dir/rb.raw" || fail "restore b"
"$VMM" check-records "$dir/ra.raw,flushed=$fa" "$dir/rb.raw,flushed=$fb" >"$dir/rcheck" 2>&1 ||
	{ cat "$dir/rcheck"; fail "the restored images lack records flushed before the freeze"; }

# ---- the second one: incremental
wait_console 10 'records: vss: thawed \(freeze 1\)' || fail "no thaw"
f0=$(flushed 0)
for _ in $(seq 100); do [ "$(flushed 0)" -gt "$f0" ] && break; sleep 0.1; done
"$VHDTOOL" backup create --vm "$dir/c.sock" --disk 0 --output=json "$repo" >"$dir/b2.json" 2>"$dir/b2.err" ||
	{ cat "$dir/b2.err" "$dir/b2.json"; fail "second backup create --vm"; }
[ "$(json "$dir/b2.json" '[(d["lun"], d["backup"]["kind"], d["backup"]["parent"], d["backup"]["chunks-read"] < d["backup"]["chunks"], d["merged"]) for d in j["disks"]]')" = \
  "[(0, 'incremental', '$id_a', True, True)]" ] ||
	fail "second backup (LUN 0 only, incremental): $(cat "$dir/b2.json")"

# ---- SIGINT while a disk is backed up: the LUNs are merged back all the same
"$VHDTOOL" backup create --vm "$dir/c.sock" "$repo" >"$dir/bi.out" 2>"$dir/bi.err" &
bpid=$!
for _ in $(seq 1000); do grep -q "backing up" "$dir/bi.err" && break; sleep 0.01; done
kill -INT "$bpid"
wait "$bpid"; irc=$?
if [ $irc = 0 ]; then
	echo "  (the backup finished before SIGINT landed)"
else
	[ $irc = 1 ] && grep -q "interrupted" "$dir/bi.err" || fail "SIGINT: rc $irc $(cat "$dir/bi.err")"
fi
"$VHDTOOL" vm --output=json "$dir/c.sock" disks >"$dir/disks.json" || fail "vm disks"
[ "$(json "$dir/disks.json" '[(d["top"], d["snapshots"]) for d in j["disks"]]')" = "[('$a', 0), ('$b', 0)]" ] ||
	fail "after SIGINT: $(cat "$dir/disks.json") $(cat "$dir/bi.err")"

# ---- a snapshot child left behind is refused
"$VHDTOOL" vm "$dir/c.sock" snapshot 1 >/dev/null || fail "vm snapshot 1"
n0=$(ls "$repo/backups" | wc -l)
"$VHDTOOL" backup create --vm "$dir/c.sock" "$repo" >"$dir/b3.out" 2>&1 && fail "a LUN with a child was backed up"
grep -q "LUN 1 already has a snapshot child .*vhdtool vm $dir/c.sock merge 1" "$dir/b3.out" ||
	fail "refusal: $(cat "$dir/b3.out")"
[ "$(ls "$repo/backups" | wc -l)" = "$n0" ] || fail "something was backed up"
"$VHDTOOL" vm "$dir/c.sock" merge 1 >/dev/null || fail "vm merge 1"

"$VHDTOOL" vm "$dir/c.sock" quit >/dev/null || fail "vm quit"
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after quit"
grep -q "records: stopped: .* 0 mismatches, 0 I/O errors, 3 freezes, 3 thaws" "$dir/err" ||
	fail "the guest did not stop cleanly"
check_records "$a" 0
check_records "$b" 1
"$VHDTOOL" backup verify "$repo" >"$dir/verify" 2>&1 || { cat "$dir/verify"; fail "verify"; }

# ---- --require-app-consistent, and a guest that refuses FREEZE
c=$dir/c.vhd
"$VHDTOOL" create "$c" 32M >/dev/null || fail "create c"
start_vmm --mem 64M --timeout 40 --workload records,flush_ms=100,vss=refuse \
	--disk "$c,lun=0" --control "$dir/c.sock"
wait_console 15 'records: flushed 0:[0-9]+' || fail "refuse: no records"
n0=$(ls "$repo/backups" | wc -l)
"$VHDTOOL" backup create --vm "$dir/c.sock" --require-app-consistent --freeze-timeout 2000 "$repo" \
	>"$dir/b4.out" 2>&1 && fail "require-app-consistent succeeded with a refusing guest"
grep -q "refused" "$dir/b4.out" && grep -q "nothing backed up" "$dir/b4.out" ||
	fail "require-app-consistent: $(cat "$dir/b4.out")"
[ "$(ls "$repo/backups" | wc -l)" = "$n0" ] || fail "something was backed up"
ls "$dir" | grep -q 'c-snap' && fail "a child was left: $(ls "$dir")"
# without it: crash-consistent, with the reason
"$VHDTOOL" backup create --vm "$dir/c.sock" --freeze-timeout 2000 "$repo" >"$dir/b5.out" 2>&1 ||
	fail "crash-consistent backup: $(cat "$dir/b5.out")"
grep -q "crash-consistent: FREEZE: the guest refused" "$dir/b5.out" || fail "crash: $(cat "$dir/b5.out")"
"$VHDTOOL" backup show "$repo" latest | grep -q '^consistency: *crash$' || fail "manifest: not crash"
"$VHDTOOL" vm "$dir/c.sock" quit >/dev/null || fail "vm quit (refuse)"
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after quit (refuse)"
check_records "$c" 0
echo ok
