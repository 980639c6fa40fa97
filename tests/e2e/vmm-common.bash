# Sourced by tests/e2e/test-vmm-*.sh: scratch folder, cleanup, skips, fail.
# VMM is the vmm-mini program ($BUILD/bin/vmm-mini unless set).
set -u
BUILD=${BUILD:-build}
VMM=${VMM:-$BUILD/bin/vmm-mini}
dir=$(mktemp -d)
cleanup() { rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$dir/err" ] && sed 's/^/  | /' "$dir/err"; exit 1; }
skip() { echo "$*"; exit 77; }

[ -x "$VMM" ] || fail "$VMM not built (make)"

# VMM_USER_MODE=1 runs these tests on the user-mode backend instead of KVM
# (vmm-mini run --user-mode): a check of the tests and of the guest on
# machines without KVM.
USER_MODE_ARG=()
[ "${VMM_USER_MODE:-0}" = 1 ] && USER_MODE_ARG=(--user-mode)

# Skips (77) unless /dev/kvm exists and opens read-write.
requires_kvm() {
	[ "${VMM_USER_MODE:-0}" = 1 ] && return 0
	[ -e /dev/kvm ] || skip "/dev/kvm is missing: no KVM on this machine"
	( exec 3<>/dev/kvm ) 2>/dev/null || skip "/dev/kvm is not usable by $(id -un)"
}

# run_vmm SECONDS ARGS...: vmm-mini run with a hard limit; stderr in
# $dir/err, exit status in $rc.
run_vmm() {
	local secs=$1
	shift
	timeout -k 2 "$secs" "$VMM" run "${USER_MODE_ARG[@]}" "$@" 2>"$dir/err"
	rc=$?
}

# stat NAME: the value `--stats` printed for NAME (empty if none).
stat() {
	sed -n "s/.* $1=\([0-9]*\).*/\1/p" "$dir/err" | tail -n 1
}
