# Sourced by the iSCSI shell tests (tests/interop/test-iscsi-*.sh):
# nbd-common.bash (tests/lib.bash's scratch folder, at_exit, fail, skip,
# requires; the server and bg_pids ended at exit) and `vhdtool serve
# --iscsi` on a free port in the background (its own stop).  Not a test
# itself (no .sh).

V=${VHDTOOL:?VHDTOOL must be set (make test does)}
IQN=iqn.2024-01.local.vhdtool:test
. "$(dirname "${BASH_SOURCE[0]}")/nbd-common.bash"

# serve_iscsi ARGS...: start `vhdtool serve --iscsi --port 0 ARGS...` (the
# kernel picks a free port, so parallel test runs never collide) and wait
# until it listens; sets $port, $portal (iscsi://127.0.0.1:PORT) and $url
# (the target's URL without a LUN).
serve_iscsi() {
	rm -f "$dir/serve.out"
	"$V" serve --iscsi --port 0 --target-name "$IQN" "$@" \
		>"$dir/serve.out" 2>"$dir/serve.err" &
	srv_pid=$!
	for _ in $(seq 400); do
		if grep -q '^serving' "$dir/serve.out" 2>/dev/null; then
			port=$(sed -n '1s|.* at iscsi://127.0.0.1:\([0-9]*\)/.*|\1|p' "$dir/serve.out")
			portal=iscsi://127.0.0.1:$port
			url=$portal/$IQN
			return 0
		fi
		kill -0 "$srv_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "FAIL: vhdtool serve --iscsi did not start:"
	cat "$dir/serve.err"
	exit 1
}

# stop [SIGNAL]: stop the server; fail unless it exits 0.
stop() {
	local rc=0

	kill -"${1:-TERM}" "$srv_pid" || { echo "FAIL: vhdtool serve --iscsi ended before it was stopped:"; cat "$dir/serve.err"; exit 1; }
	wait "$srv_pid" || rc=$?
	srv_pid=
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: vhdtool serve --iscsi exited with $rc:"
		cat "$dir/serve.err"
		exit 1
	fi
}
