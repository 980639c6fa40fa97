#!/bin/bash
# libiscsi's compliance suite (iscsi-test-cu) against vhdtool serve --iscsi:
# the SCSI families that apply to a disk and the iSCSI protocol families
# on a dynamic VHD (512-byte sectors, 4 KiB physical blocks), the block
# SCSI suites again on the same kind of disk exported with 4096-byte
# sectors (--sector-size 4096), ReadOnly on a read-only LUN, MultipathIO over two
# sessions.  Each run's results are checked against
# iscsi-compliance-expected.txt: a test listed as passing must pass, one
# listed as skipping must not fail, a test not listed must not fail
# (README.md "iSCSI compliance" says why each test skips or fails).
set -eu
. "$(dirname "$0")/iscsi-common.bash"
requires iscsi-test-cu python3
here=$(dirname "$0")

# iscsi-test-cu exits non-zero when any test fails, known ones included:
# the results are read from its output instead.
"$V" create -t dynamic "$dir/disk.vhd" 64M >/dev/null
serve_iscsi "$dir/disk.vhd"
# The SCSI families, then the iSCSI ones (their CmdSN tests drop and
# re-login the session).
timeout 600 iscsi-test-cu -d --dataloss -t SCSI "$url/0" >"$dir/scsi.txt" 2>&1 || true
timeout 300 iscsi-test-cu -d --dataloss -t iSCSI "$url/0" >"$dir/iscsi.txt" 2>&1 || true
timeout 300 iscsi-test-cu -d --dataloss -t ALL.MultipathIO "$url/0" "$url/0" \
	>"$dir/mpio.txt" 2>&1 || true
stop
serve_iscsi --read-only "$dir/disk.vhd"
timeout 120 iscsi-test-cu -d -t SCSI.ReadOnly "$url/0" >"$dir/ro.txt" 2>&1 || true
stop
# 4096-byte sectors: the suites whose commands turn blocks into bytes
# (the whole SCSI family moves eight times the data here, too slow under
# the sanitizers).
"$V" create -t dynamic "$dir/disk4k.vhd" 64M >/dev/null
serve_iscsi --sector-size 4096 "$dir/disk4k.vhd"
suites4k=ReadCapacity10,ReadCapacity16,Inquiry,GetLBAStatus,Read16,Write16,WriteSame16
suites4k=$suites4k,Unmap,CompareAndWrite,OrWrite,WriteVerify16,Prefetch16
timeout 600 iscsi-test-cu -d --dataloss -t "SCSI.${suites4k//,/,SCSI.}" "$url/0" \
	>"$dir/scsi4k.txt" 2>&1 || true
stop

if ! python3 "$here/cu-results.py" --check "$here/iscsi-compliance-expected.txt" \
	scsi="$dir/scsi.txt" iscsi="$dir/iscsi.txt" mpio="$dir/mpio.txt" \
	ro="$dir/ro.txt" scsi4k="$dir/scsi4k.txt" >"$dir/check.txt"; then
	cat "$dir/check.txt"
	for t in $(sed -n 's/^\(REGRESSION\|MISSING\|FAILED\): [a-z0-9]* \([^ :]*\).*/\2/p' \
			"$dir/check.txt" | sort -u | head -5); do
		grep -h -A12 "Test: ${t#*.} \.\.\." "$dir"/*.txt | head -30
	done
	fail "iscsi-test-cu results differ from iscsi-compliance-expected.txt"
fi
grep -v '^note' "$dir/check.txt" || true
grep '^note' "$dir/check.txt" || true
