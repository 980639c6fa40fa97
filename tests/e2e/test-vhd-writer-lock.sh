#!/bin/bash
# Images in use are protected: while `vhdtool serve` has an image open for
# writing, a second writer (vhdtool write, check --repair, another
# read-write serve), a plain reader (read, check: they would judge data
# that is changing) and every operation that replaces or deletes it
# (convert/create/backup restore --force, merge of that child) are refused
# with one clear line, and the image is left as it was; -U/--force-share
# reads it anyway.  While a server only reads an image (a --read-only
# export, the parent of a served child), readers work and writers and
# whole-image operations (write, resize, compact, check --repair, merge
# into it) are refused.  Once the server is killed with SIGKILL the kernel
# drops its lock and everything works again.  Raw files take the same
# locks as VHDs.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
pid=
at_exit '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null'
serve() {   # serve ARGS...: start a server in the background, wait for it
	rm -f "$dir/s.sock"
	"$T" serve --socket "$dir/s.sock" "$@" >/dev/null 2>&1 &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
	[ -S "$dir/s.sock" ] || fail "server did not start: $*"
}
stop() { kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=; }
refused() {   # refused WHAT CMD...: fails with one "in use" line
	local what=$1
	shift
	"$@" >/dev/null 2>"$dir/err" </dev/null && fail "$what was let in"
	grep -q "in use" "$dir/err" || fail "$what: unclear refusal: $(cat "$dir/err")"
	[ "$(grep -c . "$dir/err")" = 1 ] || fail "$what: more than one line: $(cat "$dir/err")"
}

"$T" create "$dir/a.vhd" 16M >/dev/null || fail create
printf 'before' | "$T" write "$dir/a.vhd" 0 || fail "first write"
head -c 1M /dev/urandom > "$dir/src.raw"
"$T" backup init "$dir/repo" >/dev/null && "$T" backup create "$dir/repo" "$dir/src.raw" >/dev/null ||
	fail "backup setup"

# 1. Served read-write.
serve "$dir/a.vhd"
sum=$(sha256sum < "$dir/a.vhd")
refused "a second writer" sh -c "printf second | '$T' write '$dir/a.vhd' 0"
"$T" check --repair "$dir/a.vhd" >/dev/null 2>"$dir/err"; rc=$?
[ "$rc" = 1 ] && grep -q "in use" "$dir/err" || fail "check --repair of an image in use: $rc $(cat "$dir/err")"
"$T" serve --socket "$dir/t.sock" --once "$dir/a.vhd" 2>"$dir/err" && fail "second read-write server started"
grep -q "in use" "$dir/err" || fail "second server refusal unclear: $(cat "$dir/err")"
refused "a reader" "$T" read "$dir/a.vhd" 0 6
refused "a read-only server" "$T" serve --socket "$dir/t.sock" --once --read-only "$dir/a.vhd"
"$T" check "$dir/a.vhd" >/dev/null 2>"$dir/err"; rc=$?
[ "$rc" = 1 ] && grep -q "in use" "$dir/err" || fail "check of an image being written: $rc $(cat "$dir/err")"
refused "convert --force over it" "$T" convert --force "$dir/src.raw" "$dir/a.vhd"
refused "create --force over it" "$T" create --force "$dir/a.vhd" 8M
refused "restore --force over it" "$T" backup restore --force "$dir/repo" latest "$dir/a.vhd"
refused "a snapshot of it" "$T" snapshot "$dir/a.vhd" "$dir/snap.vhd"
[ "$(sha256sum < "$dir/a.vhd")" = "$sum" ] || fail "refused operations changed the image"
# -U reads anyway (before or after the command), never writes.
[ "$("$T" -U read "$dir/a.vhd" 0 6)" = before ] || fail "-U read"
[ "$("$T" read --force-share "$dir/a.vhd" 0 6)" = before ] || fail "read --force-share"
"$T" check -U "$dir/a.vhd" >/dev/null || fail "check -U"
# Every command that only reads an image takes -U after its name.
refused "a backup of it" "$T" backup create "$dir/repo" "$dir/a.vhd"
"$T" backup create -U --output=json "$dir/repo" "$dir/a.vhd" >"$dir/b.json" 2>/dev/null ||
	fail "backup create -U"
grep -q '"source-format": "vhd-dynamic"' "$dir/b.json" || fail "backup create -U: $(cat "$dir/b.json")"
for cmd in "info" "map" "convert -O raw" "backup repair $dir/repo"; do
	# shellcheck disable=SC2086
	set -- $cmd
	"$T" "$@" -U "$dir/a.vhd" $([ "$1" = convert ] && echo "$dir/u.raw") >/dev/null 2>"$dir/err" ||
		fail "$cmd -U: $(cat "$dir/err")"
done
"$T" check -U --repair "$dir/a.vhd" >/dev/null 2>&1 && fail "check -U --repair accepted"
printf 'x' | "$T" write -U "$dir/a.vhd" 0 2>"$dir/err" && fail "write -U accepted"
grep -q "reading only" "$dir/err" || fail "write -U refusal unclear: $(cat "$dir/err")"
stop
printf 'after!' | "$T" write "$dir/a.vhd" 0 || fail "write after the holder died"
[ "$("$T" read "$dir/a.vhd" 0 6)" = 'after!' ] || fail "write after the holder died did not land"

# 2. A child served read-write: the child cannot be merged away, its
# parent neither changed nor replaced.
"$T" snapshot "$dir/a.vhd" "$dir/c.vhd" || fail snapshot
serve "$dir/c.vhd"
sum=$(sha256sum < "$dir/a.vhd")
refused "merge of a served child" "$T" merge "$dir/c.vhd"
[ -e "$dir/c.vhd" ] || fail "merge removed the served child"
refused "a write to the served child's parent" sh -c "printf x | '$T' write '$dir/a.vhd' 0"
refused "resize of the served child's parent" "$T" resize "$dir/a.vhd" 32M
refused "compact of the served child's parent" "$T" compact "$dir/a.vhd"
refused "convert --force over the served child's parent" "$T" convert --force "$dir/src.raw" "$dir/a.vhd"
[ "$("$T" read "$dir/a.vhd" 0 6)" = 'after!' ] || fail "a second reader of the parent was refused"
[ "$(sha256sum < "$dir/a.vhd")" = "$sum" ] || fail "refused operations changed the parent"
stop
"$T" merge "$dir/c.vhd" >/dev/null || fail "merge once the server is gone"

# 3. A read-only export: other readers share it; writers wait.
serve --read-only "$dir/a.vhd"
[ "$("$T" read "$dir/a.vhd" 0 6)" = 'after!' ] || fail "reader of a read-only export refused"
"$T" check "$dir/a.vhd" >/dev/null || fail "check of a read-only export refused"
refused "a write to a read-only export" sh -c "printf x | '$T' write '$dir/a.vhd' 0"
refused "resize of a read-only export" "$T" resize "$dir/a.vhd" 32M
refused "check --repair of a read-only export" "$T" check --repair "$dir/a.vhd"
stop
"$T" resize "$dir/a.vhd" 32M >/dev/null || fail "resize once the server is gone"
"$T" check "$dir/a.vhd" >/dev/null || fail "check at the end"

# 4. Raw files are images too (buffered and --direct opens alike): served
# read-write, a second writer, a plain reader and a replacement are
# refused; served read-only, readers share and writers are refused.
head -c 4M /dev/urandom > "$dir/r.raw"
for direct in "" --direct; do
	serve $direct "$dir/r.raw"
	sum=$(sha256sum < "$dir/r.raw")
	refused "a second writer of a served raw file $direct" sh -c "printf x | '$T' write '$dir/r.raw' 0"
	refused "a reader of a served raw file $direct" "$T" read "$dir/r.raw" 0 6
	refused "convert --force over a served raw file $direct" "$T" convert --force -O raw "$dir/src.raw" "$dir/r.raw"
	refused "restore --force over a served raw file $direct" "$T" backup restore --force "$dir/repo" latest "$dir/r.raw"
	"$T" -U read "$dir/r.raw" 0 6 >/dev/null || fail "-U read of a served raw file $direct"
	[ "$(sha256sum < "$dir/r.raw")" = "$sum" ] || fail "refused operations changed the raw file $direct"
	stop
	serve --read-only $direct "$dir/r.raw"
	"$T" read "$dir/r.raw" 0 6 >/dev/null || fail "reader of a read-only raw export $direct refused"
	refused "a write to a read-only raw export $direct" sh -c "printf x | '$T' write '$dir/r.raw' 0"
	stop
done
printf 'free' | "$T" write "$dir/r.raw" 0 || fail "raw write once the server is gone"
echo "images in use: writers, readers and whole-image operations respect each other's locks"
