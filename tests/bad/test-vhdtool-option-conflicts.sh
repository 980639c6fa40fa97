#!/bin/bash
# Options that make no sense together are refused with one line naming
# both (exit 2, a usage error), never silently ignored.  They used to be:
# serve --snapshot --read-only dropped --snapshot, --snapshot dropped
# --direct, create --parent ignored -t and --block-size, create -t fixed
# ignored --block-size, and --socket with --port printed only the usage.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
conflict() {   # WORD-A WORD-B CMD...: exit 2 (check: 1, as qemu-img), one line naming both
	local a=$1 b=$2 rc want=2
	shift 2
	[ "$2" = check ] && want=1
	timeout 20 "$@" >/dev/null 2>"$dir/err"; rc=$?
	[ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want: $(cat "$dir/err")"
	grep -q -- "$a" "$dir/err" && grep -q -- "$b" "$dir/err" ||
		fail "'$*': message does not name $a and $b: $(cat "$dir/err")"
	[ "$(wc -l < "$dir/err")" = 1 ] || fail "'$*': not one line: $(cat "$dir/err")"
}
cd "$dir" || fail cd
"$T" create a.vhd 8M >/dev/null || fail create
sum=$(sha256sum < a.vhd)

conflict --snapshot --read-only "$T" serve --snapshot --read-only --socket s.sock --once a.vhd
conflict --snapshot --direct "$T" serve --snapshot --direct --socket s.sock --once a.vhd
conflict --snapshot "-f raw" "$T" serve --snapshot -f raw --socket s.sock --once a.vhd
conflict --socket --port "$T" serve --socket s.sock --port 10999 --once a.vhd
conflict --snapshot --read-only "$T" serve --iscsi --snapshot --read-only --port 0 a.vhd
conflict --chap-user --chap-secret-file "$T" serve --iscsi --chap-user u --port 0 a.vhd
conflict --parent -t "$T" create --parent a.vhd -t fixed b.vhd
conflict --parent --block-size "$T" create --parent a.vhd --block-size 1M b.vhd
conflict "-t fixed" --block-size "$T" create -t fixed --block-size 1M c.vhd 8M
conflict --repair -U "$T" check --repair -U a.vhd
conflict --block-size "-O dynamic" "$T" convert -O raw --block-size 1M a.vhd d.raw
[ -e b.vhd ] || [ -e c.vhd ] || [ -e d.raw ] && fail "a refused command made a file"
[ "$(sha256sum < a.vhd)" = "$sum" ] || fail "a refused command changed the image"
echo "conflicting options are refused"
