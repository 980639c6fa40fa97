# Sourced by the NBD shell tests (tests/*/test-nbd-*.sh): tests/lib.bash
# (scratch folder $dir, at_exit, fail, skip, requires), `vhdtool serve` on
# a unix socket in the background (ended at exit with the processes in
# bg_pids), and allocation maps in one comparable form.  Not a test itself
# (no .sh).

V=${VHDTOOL:?VHDTOOL must be set (make test does)}
. "$(dirname "${BASH_SOURCE[0]}")/../lib.bash"

srv_pid=
bg_pids=()       # other background processes to end at exit
# the processes this helper started: bg_pids killed, the server ended
stop_servers() {
	local p

	for p in "${bg_pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ -n "$srv_pid" ]; then
		kill "$srv_pid" 2>/dev/null
		wait "$srv_pid" 2>/dev/null
	fi
}
at_exit stop_servers
sock=$dir/sock
uri="nbd+unix:///?socket=$sock"

# serve ARGS...: start `vhdtool serve --socket $sock ARGS...` and wait until
# it listens (it prints "serving ..." then).
serve() {
	rm -f "$dir/serve.out"   # not the previous server's line
	"$V" serve --socket "$sock" "$@" >"$dir/serve.out" 2>"$dir/serve.err" &
	srv_pid=$!
	for _ in $(seq 400); do
		grep -q '^serving' "$dir/serve.out" 2>/dev/null && return 0
		kill -0 "$srv_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "FAIL: vhdtool serve did not start:"
	cat "$dir/serve.err"
	exit 1
}

# stop [SIGNAL]: stop the server with SIGNAL (TERM); fail unless it exits 0.
stop() {
	local rc=0

	kill -"${1:-TERM}" "$srv_pid"
	wait "$srv_pid" || rc=$?
	srv_pid=
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: vhdtool serve exited with $rc:"
		cat "$dir/serve.err"
		exit 1
	fi
}

# Merge "offset length type" lines whose types are equal and adjacent.
merge_extents() {
	awk '{ if (n && $3 == t && $1 == o + l) l += $2;
	       else { if (n) print o, l, t; o = $1; l = $2; t = $3; n = 1 } }
	     END { if (n) print o, l, t }'
}

# map_vhdtool IMAGE: `vhdtool map --json` as NBD base:allocation types
# (hole = no data: 1, zero: 2), merged.
map_vhdtool() {
	"$V" map --json "$1" |
		sed -n 's/.*"start": \([0-9]*\), "length": \([0-9]*\),.*"zero": \([a-z]*\), "data": \([a-z]*\).*/\1 \2 \3 \4/p' |
		awk '{ print $1, $2, ($4 == "true" ? 0 : 1) + ($3 == "true" ? 2 : 0) }' |
		merge_extents
}

# map_nbdinfo URI: `nbdinfo --map --json` in the same form.
map_nbdinfo() {
	nbdinfo --map --json "$1" |
		sed -n 's/.*"offset": \([0-9]*\), "length": \([0-9]*\), "type": \([0-9]*\).*/\1 \2 \3/p' |
		merge_extents
}

