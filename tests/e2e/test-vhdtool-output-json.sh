#!/bin/bash
# --output=json (and its alias --json) on every command that reports:
# info, map, check, convert, compact, merge, resize, backup list/show and
# serve (its address at start, its statistics at exit).  Every document
# must be valid JSON (strict UTF-8) even for file names that are not
# UTF-8: such bytes are written as \uFFFD, as qemu-img does (compared
# below when qemu-img is installed); valid UTF-8 passes unchanged.  Names
# used to be copied byte for byte, which made the output invalid.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
requires python3
pid=
at_exit '[ -n "$pid" ] && kill "$pid" 2>/dev/null'
# valid FILE [KEY WANT]: FILE holds JSON documents (one or more, one after
# the other) in strict UTF-8; with KEY, the first document's KEY is WANT.
valid() {
	python3 - "$@" <<'PY' || fail "$1: not valid JSON: $(head -c 400 "$1")"
import json, sys
raw = open(sys.argv[1], "rb").read()
text = raw.decode("utf-8")            # strict: invalid UTF-8 raises
dec, i, docs = json.JSONDecoder(), 0, []
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    d, i = dec.raw_decode(text, i)
    docs.append(d)
assert docs, "no document"
if len(sys.argv) > 2:
    got = docs[0][sys.argv[2]]
    want = sys.argv[3]
    assert got == want, "%r != %r" % (got, want)
PY
}

# Stray continuation byte, a cut two-byte sequence, an overlong '/', a
# surrogate, past U+10FFFF, then valid two-, three- and four-byte ones.
bad=$(printf 'n\x80\xc3(\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80')
# qemu's rules: each bad sequence (with the continuation bytes its lead
# byte takes) is one U+FFFD.
want=$(printf 'n\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80')
cd "$dir" || fail cd
mkdir "$bad" || fail "mkdir of a non-UTF-8 name"
img=$bad/disk.vhd
"$T" create "$img" 8M >/dev/null || fail create
printf 'payload' | "$T" write "$img" 0 || fail write

"$T" info --output=json "$img" > info.json || fail info
valid info.json filename "$want/disk.vhd"
"$T" info --json "$img" > info2.json || fail "info --json"
cmp -s info.json info2.json || fail "--json differs from --output=json"
"$T" info --output=human "$img" > h1 && "$T" info "$img" > h2 && cmp -s h1 h2 ||
	fail "--output=human differs from the default"
"$T" info --output=yaml "$img" >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] || fail "--output=yaml: exit $rc, want 2 (usage)"
if command -v qemu-img >/dev/null; then
	qemu-img info --output=json -f vpc "$img" > q.json || fail "qemu-img info"
	valid q.json filename "$want/disk.vhd"
fi

"$T" map --output=json "$img" > map.json || fail map
valid map.json
"$T" check --output=json "$img" > check.json || fail check
valid check.json filename "$want/disk.vhd"
"$T" convert --output=json "$img" "$bad/flat.raw" > conv.json || fail convert
valid conv.json destination "$want/flat.raw"
# A chain: the parent's path must round-trip through the locators (a
# non-UTF-8 one is refused), the child's own name need not.
mkdir ok && "$T" create ok/p.vhd 8M >/dev/null || fail "parent"
child=ok/$bad.vhd
"$T" create --parent ok/p.vhd "$child" >/dev/null || fail snapshot
printf 'child' | "$T" write "$child" 4096 || fail "write child"
"$T" resize --output=json "$child" 16M > resize.json || fail resize
valid resize.json filename "ok/$want.vhd"
"$T" compact --json "$child" > compact.json || fail compact
valid compact.json filename "ok/$want.vhd"
"$T" merge --output=json --keep "$child" > merge.json || fail merge
valid merge.json filename "ok/$want.vhd"

"$T" backup init repo >/dev/null || fail "backup init"
id=$("$T" backup create repo "$img" 2>/dev/null) || fail "backup create"
"$T" backup list --output=json repo > list.json || fail "backup list"
valid list.json
"$T" backup show --output=json repo "$id" > show.json || fail "backup show"
valid show.json source "$dir/$want/disk.vhd"

# serve: the address at start, the statistics at exit.
"$T" serve --socket "$dir/s.sock" --once --output=json "$img" > serve.json 2>serve.err &
pid=$!
for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.1; done
[ -S "$dir/s.sock" ] || fail "serve did not start: $(cat serve.err)"
if command -v qemu-io >/dev/null; then
	qemu-io -f raw -c 'read 0 7' "nbd+unix:///?socket=$dir/s.sock" >/dev/null ||
		fail "qemu-io over NBD"
else
	"$T" read "$img" 0 1 >/dev/null 2>&1   # (refused: in use) no client
	kill "$pid"
fi
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "serve --once did not exit"
wait "$pid" || fail "serve exited $?: $(cat serve.err)"
pid=
valid serve.json serving "$want/disk.vhd"
grep -q '"statistics": {"connections": ' serve.json || fail "no statistics at exit: $(cat serve.json)"
echo "JSON output is valid for every reporting command and any file name"
