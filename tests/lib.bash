# Sourced by the shell tests (tests/{e2e,interop,bad,crash}/test-*.sh):
#   . "$(dirname "$0")/../lib.bash"
# gives a scratch folder $dir (removed at exit; KEEP=1 keeps it), at_exit
# CMD (run at exit before the folder goes: stop servers, detach loop
# devices), fail MESSAGE (exit 1; fail_show FILE... names logs it then
# prints, indented, where they exist), skip WHY and requires TOOL... (exit
# 77, the "cannot run here" status of scripts/run-tests.sh).  The area
# helpers (tests/e2e/*-common.bash, tests/interop/*-common.bash) source it
# and add their own functions.  Not a test itself (no .sh).
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/vhdtool-test.XXXXXX") || { echo "FAIL: mktemp"; exit 1; }
_lib_at_exit=()
at_exit() { _lib_at_exit+=("$*"); }
_lib_cleanup() {
	local rc=$? c
	set +e
	for c in "${_lib_at_exit[@]}"; do eval "$c"; done
	[ -n "${KEEP:-}" ] || rm -rf "$dir"
	exit "$rc"
}
trap _lib_cleanup EXIT
_lib_fail_show=()
fail_show() { _lib_fail_show+=("$@"); }
fail() {
	local f
	echo "FAIL: $*"
	for f in "${_lib_fail_show[@]}"; do
		[ -f "$f" ] && sed 's/^/  | /' "$f"
	done
	exit 1
}
skip() { echo "skip: $*"; exit 77; }
requires() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
	done
}
