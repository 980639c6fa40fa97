#!/bin/bash
# Run each test program given on the command line; exit 77 means skipped.
# Output of each test goes to $BUILD/test-logs/NAME.log and is shown when the
# test fails.  Ends with "N passed, N failed, N skipped".
set -u
BUILD=${BUILD:-build}
logs="$BUILD/test-logs"
mkdir -p "$logs"
pass=0 fail=0 skip=0 failed=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# A TSan report makes the test exit 66 (TSan's default) at its end; known
# races are listed, with reasons, in scripts/tsan.supp.
export TSAN_OPTIONS=${TSAN_OPTIONS:-second_deadlock_stack=1:suppressions=$(cd "$(dirname "$0")" && pwd)/tsan.supp}
for t in "$@"; do
	name=$(echo "$t" | sed 's|^tests/||; s|^'"$BUILD"'/tests/|unit/|; s|/|-|g')
	log="$logs/$name.log"
	start=$(date +%s)
	timeout "${TEST_TIMEOUT:-900}" "$t" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0)  pass=$((pass + 1)); printf 'PASS  %-50s %4ss\n' "$name" "$secs" ;;
	77) skip=$((skip + 1)); printf 'SKIP  %-50s (%s)\n' "$name" "$(tail -n 1 "$log")" ;;
	*)  fail=$((fail + 1)); failed+=("$name")
	    printf 'FAIL  %-50s rc=%s\n' "$name" "$rc"
	    tail -n 40 "$log" | sed 's/^/    | /' ;;
	esac
done
echo
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
