#!/bin/bash
# A guest that stores to an address with no page is stopped: the VMM prints
# one line with the vector (14, #PF), the error code, the RIP inside the
# guest image and CR2 = the address, and exits non-zero, well within the
# time limit (it must never hang).  A #GP (non-canonical address) too.
. "$(dirname "$0")/vmm-common.bash"
requires_kvm

start=$(date +%s)
run_vmm 15 --workload fault,0xdead0000 --timeout 10
[ "$rc" != 0 ] || fail "fault workload exited 0"
[ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "VMM hung on a guest fault"
[ $(( $(date +%s) - start )) -lt 10 ] || fail "the fault took the whole time limit"
line=$(grep 'guest fault:' "$dir/err")
[ "$(echo "$line" | wc -l)" = 1 ] || fail "want one fault line, got: $line"
case $line in
*"vector 14 (#PF) error 0x"[0-9a-f]*" at RIP 0x1"*" CR2 0xdead0000"*) ;;
*) fail "unclear fault line: $line" ;;
esac
# The RIP lies in the image (1 MiB up to the boot page).
rip=$(echo "$line" | sed -n 's/.*at RIP \(0x[0-9a-f]*\).*/\1/p')
[ $((rip)) -ge $((0x100000)) ] && [ $((rip)) -lt $((0x1f0000)) ] || fail "RIP $rip outside the image"

run_vmm 15 --workload fault,0x8000000000000000 --timeout 10
[ "$rc" != 0 ] || fail "non-canonical store exited 0"
grep -q 'guest fault: vector 13 (#GP)' "$dir/err" || fail "no #GP reported"
echo "ok"
