#!/bin/bash
# Destinations that are not plain files, for every command that publishes
# a file (convert, create --force, backup restore --force):
# - character devices and FIFOs are refused with one clear line and left as
#   they were (they used to be replaced by a regular file: /dev/null was);
# - a symlink is followed: the file it names is replaced, the link stays;
# - a replaced file keeps its owner, group and mode (--force used to make
#   a 0600 image of another user a 0644 file of root);
# - a block device is written in place by convert -O raw and restore
#   (restore used to replace the device node and exit 0); a VHD format onto
#   it is refused.
# Device nodes are made in the scratch folder (mknod), so a regression
# replaces only those, never the system's.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
loops=()
at_exit 'for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done'
refused() {   # MESSAGE-PART CMD...: must fail with one line naming it
	local msg=$1
	shift
	"$@" >/dev/null 2>"$dir/err" && fail "'$*' succeeded"
	grep -q -- "$msg" "$dir/err" || fail "'$*': message lacks '$msg': $(cat "$dir/err")"
	[ "$(wc -l <"$dir/err")" = 1 ] || fail "'$*': not one line: $(cat "$dir/err")"
}

# Data, a zero MiB (restore writes nothing there into a new file; onto a
# device it must zero it), data.
{ head -c 1M /dev/urandom; head -c 1M /dev/zero; head -c 1M /dev/urandom; } > "$dir/src.raw"
"$T" convert "$dir/src.raw" "$dir/src.vhd" || fail "convert to a VHD"
repo=$dir/repo
"$T" backup init "$repo" >/dev/null || fail "backup init"
"$T" backup create "$repo" "$dir/src.raw" >/dev/null || fail "backup create"

# Character devices and FIFOs: refused, never replaced.
mknod "$dir/null" c 1 3 2>/dev/null || skip "cannot mknod here"
mkfifo "$dir/fifo"
for d in null fifo; do
	refused "only a regular file or a block device" \
		timeout 20 "$T" convert -O raw --force "$dir/src.raw" "$dir/$d"
	refused "only a regular file or a block device" \
		timeout 20 "$T" convert -O dynamic --force "$dir/src.raw" "$dir/$d"
	refused "only a regular file or a block device" \
		timeout 20 "$T" backup restore --force "$repo" latest "$dir/$d"
	refused "only a regular file or a block device" \
		timeout 20 "$T" create --force "$dir/$d" 8M
done
[ -c "$dir/null" ] || fail "the character device was replaced"
[ -p "$dir/fifo" ] || fail "the FIFO was replaced"
refused "is a folder" "$T" convert -O raw --force "$dir/src.raw" "$dir"

# Symlinks: the file they name is replaced (a relative link, a link to a
# link, a dangling link); the links stay links.
mkdir "$dir/real" "$dir/links"
for cmd in convert restore create; do
	echo old > "$dir/real/$cmd.img"
	ln -s ../real/$cmd.img "$dir/links/$cmd.mid"
	ln -s "$dir/links/$cmd.mid" "$dir/links/$cmd.img"
	case $cmd in
	convert) "$T" convert -O raw --force "$dir/src.raw" "$dir/links/$cmd.img" ;;
	restore) "$T" backup restore -O raw --force "$repo" latest "$dir/links/$cmd.img" ;;
	create)  "$T" create --force "$dir/links/$cmd.img" 8M ;;
	esac || fail "$cmd through a symlink"
	[ -L "$dir/links/$cmd.img" ] && [ -L "$dir/links/$cmd.mid" ] || fail "$cmd replaced the symlink"
	case $cmd in
	create) "$T" check "$dir/real/$cmd.img" >/dev/null || fail "create did not write the target" ;;
	*) cmp -s "$dir/real/$cmd.img" "$dir/src.raw" || fail "$cmd did not write the symlink's target" ;;
	esac
done
ln -s ../real/new.vhd "$dir/links/dangling.vhd"
"$T" convert "$dir/src.raw" "$dir/links/dangling.vhd" || fail "convert onto a dangling symlink"
[ -L "$dir/links/dangling.vhd" ] || fail "the dangling symlink was replaced"
"$T" read "$dir/real/new.vhd" 0 3M | cmp -s - "$dir/src.raw" || fail "dangling symlink target wrong"
# A child made through a symlink finds its parent relative to where it is.
ln -s ../real/child.vhd "$dir/links/child.vhd"
"$T" create --parent "$dir/src.vhd" "$dir/links/child.vhd" || fail "snapshot through a symlink"
mv "$dir/src.vhd" "$dir/src2.vhd"; mv "$dir/src2.vhd" "$dir/src.vhd"
"$T" read "$dir/real/child.vhd" 0 3M | cmp -s - "$dir/src.raw" || fail "child made through a symlink does not read its parent"
"$T" backup restore "$repo" latest "$dir/links/dangling.vhd" 2>"$dir/err" && fail "restore replaced without --force"

# create --force may not replace a file of the new child's own chain (the
# base's data would be lost and the chain would point at itself).
"$T" snapshot "$dir/src.vhd" "$dir/mid.vhd" || fail snapshot
refused "part of its chain" "$T" create --force --parent "$dir/mid.vhd" "$dir/src.vhd"
refused "part of its chain" "$T" create --force --parent "$dir/src.vhd" "$dir/src.vhd"
"$T" read "$dir/mid.vhd" 0 3M | cmp -s - "$dir/src.raw" || fail "a refused create changed the chain"

# Owner, group and mode of a replaced file are kept.
for cmd in convert restore create; do
	echo old > "$dir/own-$cmd.vhd"
	chown 1234:2345 "$dir/own-$cmd.vhd" && chmod 0640 "$dir/own-$cmd.vhd" || fail chown
	case $cmd in
	convert) "$T" convert --force "$dir/src.raw" "$dir/own-$cmd.vhd" ;;
	restore) "$T" backup restore --force "$repo" latest "$dir/own-$cmd.vhd" ;;
	create)  "$T" create --force "$dir/own-$cmd.vhd" 8M ;;
	esac || fail "$cmd --force over a file of another user"
	[ "$(stat -c '%u:%g %a' "$dir/own-$cmd.vhd")" = "1234:2345 640" ] ||
		fail "$cmd --force changed owner or mode: $(stat -c '%u:%g %a' "$dir/own-$cmd.vhd")"
	"$T" check "$dir/own-$cmd.vhd" >/dev/null || fail "$cmd output damaged"
done
# A new file is made the usual way.
"$T" convert "$dir/src.raw" "$dir/fresh.vhd" && [ "$(stat -c %u "$dir/fresh.vhd")" = "$(id -u)" ] ||
	fail "new file owner"

# Block devices: written in place.
command -v losetup >/dev/null || { echo "losetup missing: block devices not tested"; exit 0; }
truncate -s 4M "$dir/disk.img"
head -c 4M /dev/urandom > "$dir/disk.img"   # dirty: zero ranges must be zeroed
dev=$(losetup -f --show "$dir/disk.img" 2>/dev/null) || { echo "cannot attach a loop device: block devices not tested"; exit 0; }
loops+=("$dev")
mm=$(stat -c '%t %T' "$dev")
mknod "$dir/blk" b $((0x${mm% *})) $((0x${mm#* })) || fail "mknod of a block device"
refused "only a raw image" "$T" backup restore -O dynamic --force "$repo" latest "$dir/blk"
refused "only a raw image" "$T" convert -O dynamic --force "$dir/src.raw" "$dir/blk"
refused "already exists" "$T" backup restore "$repo" latest "$dir/blk"
"$T" backup restore --force "$repo" latest "$dir/blk" || fail "restore onto a block device"
[ -b "$dir/blk" ] || fail "restore replaced the block device node"
head -c 3M "$dev" | cmp -s - "$dir/src.raw" || fail "restore did not write the device"
head -c 1M /dev/urandom > "$dir/small.raw"
"$T" convert -O raw --force "$dir/small.raw" "$dir/blk" || fail "convert onto a block device"
[ -b "$dir/blk" ] || fail "convert replaced the block device node"
head -c 1M "$dev" | cmp -s - "$dir/small.raw" || fail "convert did not write the device"
ln -s "$dir/blk" "$dir/blk-link"
"$T" backup restore --force "$repo" latest "$dir/blk-link" || fail "restore onto a link to a block device"
[ -L "$dir/blk-link" ] && [ -b "$dir/blk" ] || fail "restore through a link replaced a node"
head -c 3M "$dev" | cmp -s - "$dir/src.raw" || fail "restore through a link did not write the device"
echo "devices, FIFOs, symlinks, owners and block devices handled"
