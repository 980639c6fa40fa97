#!/bin/bash
# `vhdtool backup create --vm CTL` into an S3 repository (a real radosgw,
# tests/ceph-cluster.bash) with the built-in guest writing records on one
# dynamic VHD, on the user-mode backend unless VMM_USER_MODE=0:
#  - the S3 options given to "backup" reach the live path: the environment
#    points at a closed port and only --s3-endpoint names radosgw;
#  - the backup is application-consistent, the LUN is merged back, and
#    the image restored from the bucket holds every record the guest
#    flushed before it answered FREEZE (vmm-mini check-records);
#  - --cache-dir: the new manifest is in the cache, with the store's bytes;
#  - after quit the image checks clean and the repository verifies.
export VMM_USER_MODE=${VMM_USER_MODE:-1}
. "$(dirname "$0")/vmm-common.bash"
. "$(dirname "$0")/../ceph-cluster.bash"
requires_kvm
[ -n "$PY3" ] || skip "python3 is not installed"
B=${BUILD:-build}
P=$B/tests/tools/s3probe
[ -x "$P" ] || fail "$P not built"
ceph_cluster_start "$dir/ceph"
ceph_rgw_start
endpoint=$AWS_ENDPOINT_URL
export AWS_ENDPOINT_URL=http://127.0.0.1:1   # nothing listens there
S=(--s3-endpoint "$endpoint")
R=s3://vhds-live/repo

a=$dir/a.vhd
"$VHDTOOL" create "$a" 32M >/dev/null || fail "create a"
"$VHDTOOL" backup init --s3-retries 0 "$R" >/dev/null 2>"$dir/init.err" &&
	fail "init reached a store through the closed port: the test cannot tell options from the environment"
"$VHDTOOL" backup init "${S[@]}" "$R" >/dev/null || fail "backup init with --s3-endpoint"
start_vmm --mem 64M --timeout 60 --workload records,flush_ms=100 \
	--disk "$a,lun=0" --control "$dir/c.sock"
wait_console 15 'records: flushed 0:[0-9]+' || fail "no records"
wait_console 10 'vss: channel [0-9]+ open' || fail "the guest did not open the VSS channel"

json() { "$PY3" -c "import json,sys; j=json.load(open(sys.argv[1])); print(($2))" "$1"; }
"$VHDTOOL" backup create --vm "$dir/c.sock" --output=json --cache-dir "$dir/mc" "${S[@]}" "$R" \
	>"$dir/b1.json" 2>"$dir/b1.err" || { cat "$dir/b1.err" "$dir/b1.json"; fail "backup create --vm to S3"; }
[ "$(json "$dir/b1.json" 'j["consistency"], [(d["lun"], d["merged"]) for d in j["disks"]]')" = \
  "('application', [(0, True)])" ] || fail "live backup to S3: $(cat "$dir/b1.json")"
id=$(json "$dir/b1.json" 'j["disks"][0]["backup"]["id"]')
"$VHDTOOL" backup restore "${S[@]}" "$R" "$id" "$dir/ra.raw" || fail "restore from S3"
line=$(grep -B1 'records: vss: frozen (freeze 1)' "$dir/err" | grep 'records: flushed' | tail -n 1)
fa=$(echo "$line" | sed -n 's/.* 0:\([0-9]*\).*/\1/p')
[ -n "$fa" ] && [ "$fa" -gt 0 ] || fail "no flush before the freeze: '$line'"
"$VMM" check-records "$dir/ra.raw,flushed=$fa" >"$dir/rcheck" 2>&1 ||
	{ cat "$dir/rcheck"; fail "the image restored from S3 lacks records flushed before the freeze"; }
AWS_ENDPOINT_URL=$endpoint "$P" get "$R/backups/$id.json" "$dir/m.json" || fail "get the manifest"
cmp "$dir/m.json" "$dir"/mc/*/backups/"$id".json || fail "the new manifest is not in the cache as stored"

"$VHDTOOL" vm "$dir/c.sock" quit >/dev/null || fail "vm quit"
stop_vmm 0
[ "$rc" = 0 ] || fail "vmm-mini exited $rc after quit"
check_records "$a" 0
"$VHDTOOL" backup verify "${S[@]}" "$R" >"$dir/verify" 2>&1 || { cat "$dir/verify"; fail "verify"; }
echo ok
