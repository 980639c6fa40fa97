# Sourced by tests/e2e/test-vmm-*.sh: tests/lib.bash (scratch folder $dir,
# at_exit, fail, skip, requires; fail shows vmm-mini's stderr $dir/err)
# and the vmm-mini functions.  VMM is the vmm-mini program
# ($BUILD/bin/vmm-mini unless set).
BUILD=${BUILD:-build}
VMM=${VMM:-$BUILD/bin/vmm-mini}
. "$(dirname "${BASH_SOURCE[0]}")/../lib.bash"
fail_show "$dir/err"

[ -x "$VMM" ] || fail "$VMM not built (make)"

# VMM_USER_MODE=1 runs these tests on the user-mode backend instead of KVM
# (vmm-mini run --user-mode): a check of the tests and of the guest on
# machines without KVM.
USER_MODE_ARG=()
[ "${VMM_USER_MODE:-0}" = 1 ] && USER_MODE_ARG=(--user-mode)

# Skips (77) unless /dev/kvm is a character device that opens read-write
# (a regular file of that name, which a stray `exec 3<>/dev/kvm` leaves
# behind, is no KVM).
requires_kvm() {
	[ "${VMM_USER_MODE:-0}" = 1 ] && return 0
	[ -c /dev/kvm ] || skip "/dev/kvm is missing (or not a device): no KVM on this machine"
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

# ---- storage (vmm-mini run --disk) ----
VHDTOOL=${VHDTOOL:-$BUILD/vhdtool}
pid=
cleanup_vm() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; pid=; }
at_exit cleanup_vm

# start_vmm ARGS...: vmm-mini run in the background (stderr in $dir/err,
# pid in $pid); waits for the control socket when --control is given.
start_vmm() {
	# emptied here, not only by the job's own redirection, which may run
	# after the caller's first wait_console: that would match the previous
	# VMM's console lines
	: >"$dir/err"
	"$VMM" run "${USER_MODE_ARG[@]}" "$@" 2>"$dir/err" &
	pid=$!
}

# ctl SOCKET JSON...: one answer line per request, on stdout.
# (The system's python when there is one: a pyenv shim takes seconds to
# start on a loaded machine.)
PY3=$(command -v /usr/bin/python3 || command -v python3)
ctl() {
	"$PY3" - "$@" <<'PY'
import socket, sys, time
for _ in range(100):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1]); break
    except OSError as e:
        err = e
        s.close(); time.sleep(0.05)
else:
    sys.exit("control socket: %s" % err)
f = s.makefile("rw")
for q in sys.argv[2:]:
    f.write(q + "\n"); f.flush(); print(f.readline().strip())
PY
}

# wait_console SECONDS REGEX: until the guest's console (stderr) matches.
wait_console() {
	local end=$((SECONDS + $1))
	while [ $SECONDS -lt $end ]; do
		grep -Eq "$2" "$dir/err" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# flushed LUN: the last sequence the guest reported flushed on LUN (0 if none).
flushed() {
	local v
	v=$(grep -o "records: flushed.* $1:[0-9]*" "$dir/err" | tail -n 1 | sed "s/.* $1://")
	echo "${v:-0}"
}

# stop_vmm SIGNAL: signal the VMM and wait (15 s at most); exit status in $rc.
stop_vmm() {
	kill -"$1" "$pid" 2>/dev/null
	for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	{ wait "$pid"; } 2>/dev/null
	rc=$?
	pid=
}

# check_records IMAGE LUN: records verified from the host, at least what
# the guest saw flushed on LUN; then the image's own check.
check_records() {
	"$VMM" check-records "$1,flushed=$(flushed "$2")" >>"$dir/check" 2>&1 ||
		{ cat "$dir/check"; fail "records on $1 (LUN $2)"; }
	case $1 in
	*.vhd)
		local crc=0
		"$VHDTOOL" check "$1" >>"$dir/check" 2>&1 || crc=$?
		# After a kill -9 (KILLED=1) leaked space (exit 3: a block written
		# whose BAT entry was not yet) is allowed, never corruption.
		[ "$crc" = 0 ] || { [ "$crc" = 3 ] && [ "${KILLED:-0}" = 1 ]; } ||
			{ cat "$dir/check"; fail "vhdtool check $1 exited $crc"; } ;;
	esac
}
