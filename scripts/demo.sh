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
