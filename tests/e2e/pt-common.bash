# Sourced by the pass-through tests (tests/e2e/test-passthrough-*.sh):
# tests/lib.bash (scratch folder $dir, at_exit, fail, skip, requires), the
# bdev-io driver (tests/helpers/bdev-io.c), and an end at exit of the
# processes the test started, its FUSE mounts and its loop devices (before
# the folder goes).  Not a test itself (no .sh).

BUILD=${BUILD:-build}
IO=$PWD/$BUILD/tests/helpers/bdev-io
V=${VHDTOOL:-$PWD/$BUILD/vhdtool}
. "$(dirname "${BASH_SOURCE[0]}")/../lib.bash"
[ -x "$IO" ] || skip "$IO not built (make all)"

pids=()     # background processes to kill at exit
mounts=()   # FUSE mount points to unmount at exit
loops=()    # loop devices to detach at exit
pt_cleanup() {
	local p m l

	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for m in "${mounts[@]}"; do
		if command -v fusermount3 >/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		else
			umount -l "$m" 2>/dev/null
		fi
	done
	for l in "${loops[@]}"; do
		losetup -d "$l" 2>/dev/null
	done
}
at_exit pt_cleanup

# loop_attach FILE ARGS...: attach FILE to a free loop device (losetup
# ARGS), remember it for cleanup, set LOOP to its name (not in a $(...)
# subshell: the cleanup list would not see it).  Skips the test where loop
# devices cannot be attached (no permission, no loop driver).
loop_attach() {
	local f=$1

	shift
	losetup -f --show "$@" "$f" >"$dir/losetup.out" 2>"$dir/losetup.err" ||
		skip "cannot attach a loop device: $(cat "$dir/losetup.err")"
	LOOP=$(cat "$dir/losetup.out")
	loops+=("$LOOP")
}

# loop_detach DEV: detach now (and not again at exit).
loop_detach() {
	local i

	losetup -d "$1" || fail "losetup -d $1"
	for i in "${!loops[@]}"; do
		[ "${loops[$i]}" = "$1" ] && unset 'loops[$i]'
	done
}

# jget JSON KEY: one field of bdev-io --info's line.
jget() { printf '%s\n' "$1" | jq -r ".$2"; }
