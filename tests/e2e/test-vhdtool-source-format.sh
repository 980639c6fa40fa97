#!/bin/bash
# -f FMT is the source format, as in qemu-img: -f raw reads a file as raw
# bytes even when it holds a VHD; -f vpc (or vhd) requires a VHD and
# refuses anything else with one clear line.  Force is --force only (-f
# used to mean force for convert, create, merge and backup restore).
# -U/--force-share is taken after the command, as qemu-img takes it.
# Compared with qemu-img where it judges the same thing.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
has_qemu=false
command -v qemu-img >/dev/null && has_qemu=true
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
refused() {   # RC MESSAGE-PART CMD...
	local want=$1 msg=$2 rc
	shift 2
	"$@" >/dev/null 2>"$dir/err"; rc=$?
	[ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want: $(cat "$dir/err")"
	grep -q -- "$msg" "$dir/err" || fail "'$*': message lacks '$msg': $(cat "$dir/err")"
}
cd "$dir" || fail cd

"$T" create a.vhd 8M >/dev/null || fail create
printf 'inside' | "$T" write a.vhd 0 || fail write
head -c 1M /dev/urandom > r.raw
size=$(stat -c %s a.vhd)

# -f raw: the file's own bytes.
[ "$("$T" info -f raw --output=json a.vhd | jget format)" = raw ] || fail "info -f raw: format"
[ "$("$T" info -f raw --output=json a.vhd | jget virtual-size)" = "$size" ] || fail "info -f raw: size"
if $has_qemu; then
	[ "$(qemu-img info -f raw --output=json a.vhd | jget virtual-size)" = "$size" ] ||
		fail "qemu-img info -f raw disagrees"
fi
[ "$("$T" read -f raw a.vhd 0 8)" = conectix ] || fail "read -f raw does not see the footer copy"
[ "$("$T" read a.vhd 0 6)" = inside ] || fail "read without -f does not see the disk"
"$T" convert -f raw -O raw a.vhd flat.raw || fail "convert -f raw"
cmp -s a.vhd flat.raw || fail "convert -f raw is not the file's bytes"
if $has_qemu; then
	qemu-img convert -f raw -O raw a.vhd q.raw && cmp -s q.raw flat.raw ||
		fail "qemu-img convert -f raw differs"
fi
"$T" map -f raw --output=json a.vhd | grep -q '"depth": 0' || fail "map -f raw"
refused 63 "raw" "$T" check -f raw a.vhd

# -f vpc / vhd: a VHD or a clear refusal (exit 1, the file named).
for f in vpc vhd; do
	[ "$("$T" info -f $f --output=json a.vhd | jget format)" = vhd ] || fail "info -f $f"
	refused 1 "r.raw: not a VHD image" "$T" info -f $f r.raw
	refused 1 "r.raw: not a VHD image" "$T" map -f $f r.raw
	refused 1 "r.raw: not a VHD image" "$T" read -f $f r.raw 0 1
	refused 1 "r.raw: not a VHD image" "$T" convert -f $f r.raw out.vhd
	refused 1 "r.raw: not a VHD image" "$T" check -f $f r.raw
done
[ -e out.vhd ] && fail "a refused convert left its output"
if $has_qemu; then
	qemu-img info -f vpc r.raw >/dev/null 2>&1 && fail "qemu-img info -f vpc accepted a raw file"
fi
refused 2 "unknown format 'qcow2'" "$T" info -f qcow2 a.vhd
refused 2 "resize works on VHD images" "$T" resize -f raw a.vhd 16M

# Force is --force only.
"$T" convert r.raw out.raw || fail "convert"
refused 2 "unknown format 'r.raw'" "$T" convert -f r.raw out.raw
"$T" convert --force r.raw out.raw || fail "convert --force"
refused 2 "" "$T" create -f a.vhd 8M
"$T" create --force a.vhd 8M >/dev/null || fail "create --force"
"$T" create -f vpc b.vhd 8M >/dev/null || fail "create -f vpc"
"$T" create --parent b.vhd c.vhd >/dev/null || fail "child"
refused 2 "invalid option" "$T" merge -f c.vhd
"$T" backup init repo >/dev/null && "$T" backup create repo r.raw >/dev/null 2>&1 || fail backup
refused 2 "use --force" "$T" backup restore -f repo latest out.raw
"$T" backup restore --force repo latest out.raw || fail "restore --force"

# backup create -f FMT: the source's format (it meant --full before).
"$T" backup create -f raw --output=json repo a.vhd > braw.json 2>/dev/null || fail "backup create -f raw"
[ "$(jget source-format < braw.json)" = raw ] || fail "backup create -f raw: $(cat braw.json)"
[ "$(jget virtual-size < braw.json)" = "$(stat -c %s a.vhd)" ] || fail "backup create -f raw: not the file's size"
"$T" backup restore repo "$(jget id < braw.json)" back.raw || fail "restore of -f raw"
cmp -s back.raw a.vhd || fail "backup create -f raw did not keep the file's bytes"
"$T" backup create --format=vpc --output=json repo a.vhd > bvpc.json 2>/dev/null || fail "backup create --format=vpc"
[ "$(jget source-format < bvpc.json)" = vhd-dynamic ] || fail "backup create -f vpc: $(cat bvpc.json)"
refused 1 "r.raw: not a VHD image" "$T" backup create -f vpc repo r.raw
refused 2 "unknown format" "$T" backup create -f repo r.raw
"$T" backup create --full --output=json repo a.vhd > bfull.json 2>/dev/null || fail "backup create --full"
[ "$(jget kind < bfull.json)" = full ] || fail "--full is not a full backup: $(cat bfull.json)"
refused 2 "cannot be used together" "$T" backup create -f raw --vm ctl.sock repo

# -U after the command (qemu-img's place) as well as before it.
for cmd in "info" "map" "check"; do
	"$T" $cmd -U a.vhd >/dev/null || fail "$cmd -U"
	"$T" -U $cmd a.vhd >/dev/null || fail "-U $cmd"
done
"$T" convert -U -O raw a.vhd u.raw || fail "convert -U"
"$T" read a.vhd 0 1 --force-share >/dev/null || fail "read --force-share"
echo "-f is the source format; force is --force only"
