# Sourced by backup tests: read a backup's manifest and check its kind.
# Not a test itself (no .sh).  Needs VHDTOOL, $repo and fail().

# jget ID KEY...: the manifest's values, one line per key ("null" for null
# or absent).
jget() {
	timeout -k 5 120 "${VHDTOOL:?}" backup show --json "$repo" "$1" |
		python3 -c 'import json,sys; j=json.load(sys.stdin); [print("null" if j.get(k) is None else j[k]) for k in sys.argv[1:]]' "${@:2}"
}

# expect ID KIND CHUNKS-READ [REASON-SUBSTRING]
expect() {
	local k r why
	{ read -r k; read -r r; read -r why; } < <(jget "$1" kind chunks-read reason)
	[ "$k" = "$2" ] || fail "backup $1 is $k ($why), want $2"
	[ "$r" = "$3" ] || fail "backup $1 read $r chunks, want $3 ($why)"
	[ -z "${4:-}" ] || case $why in *"$4"*) ;; *) fail "backup $1: reason '$why' lacks '$4'" ;; esac
}
