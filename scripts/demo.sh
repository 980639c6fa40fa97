#!/bin/bash
# make demo: a dynamic VHD, data written into it, a snapshot (differencing
# child), data written into the child, then info of the chain and check.
set -eu
T=${VHDTOOL:-build/vhdtool}
dir=${DEMO_DIR:-build/demo}
rm -rf "$dir" && mkdir -p "$dir"
step() { printf '\n$ %s\n' "$*"; "$@"; }
step "$T" create -t dynamic "$dir/base.vhd" 64M
printf 'base layer data ' | step "$T" write "$dir/base.vhd" 0
head -c 1048576 /dev/urandom > "$dir/random.bin"
step "$T" write "$dir/base.vhd" 8M < "$dir/random.bin"
step "$T" snapshot "$dir/base.vhd" "$dir/child.vhd"
printf 'CHILD' | step "$T" write "$dir/child.vhd" 0
echo; echo "\$ vhdtool read child.vhd 0 16   (child bytes over the parent's)"
"$T" read "$dir/child.vhd" 0 16; echo
step "$T" info "$dir/child.vhd"
step "$T" map "$dir/child.vhd"
step "$T" check "$dir/base.vhd"
step "$T" check "$dir/child.vhd"
"$T" read "$dir/child.vhd" 8M 1M | cmp - "$dir/random.bin" && echo "child reads the parent's 1 MiB at 8M intact"

# Flatten the chain into one dynamic VHD, back it up, serve it over NBD.
step "$T" convert -O dynamic "$dir/child.vhd" "$dir/flat.vhd"
"$T" read "$dir/flat.vhd" 0 64M | cmp - <("$T" read "$dir/child.vhd" 0 64M) &&
	echo "flat.vhd reads the same as the chain"
step "$T" backup init "$dir/repo"
step "$T" backup create "$dir/repo" "$dir/child.vhd"
printf 'CHANGED' | "$T" write "$dir/child.vhd" 16M
step "$T" backup create "$dir/repo" "$dir/child.vhd"
step "$T" backup list "$dir/repo"
if command -v nbdinfo >/dev/null; then
	sock=$dir/nbd.sock
	"$T" serve --socket "$sock" --read-only --once "$dir/child.vhd" &
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	step nbdinfo --map "nbd+unix:///?socket=$sock"
	wait
fi
