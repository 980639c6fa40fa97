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

# The built-in guest on a VHD chain: guest -> VMBus rings in its RAM ->
# storvsp -> scsi -> bdev -> VHD.  KVM when /dev/kvm is usable, else the
# user-mode backend.  Records for a few seconds, a snapshot and a live
# merge while it runs, two live backups (application-consistent, the second
# incremental), then the records checked from the host.
VMM=${VMM:-}
if [ -n "$VMM" ] && [ -x "$VMM" ]; then
	mode=(--user-mode)
	[ -c /dev/kvm ] && ( exec 3<>/dev/kvm ) 2>/dev/null && mode=()
	step "$T" create -t dynamic "$dir/vm-base.vhd" 64M
	step "$T" snapshot "$dir/vm-base.vhd" "$dir/vm-disk.vhd"
	echo; echo "\$ vmm-mini run ${mode[*]} --disk vm-disk.vhd --control ctl.sock --workload records,progress_ms=1000,flush_ms=500"
	"$VMM" run "${mode[@]}" --mem 64M --timeout 30 --disk "$dir/vm-disk.vhd" \
		--control "$dir/ctl.sock" --workload records,progress_ms=1000,flush_ms=500 \
		2>"$dir/vm.err" &
	vm=$!
	sleep 2
	step "$T" vm "$dir/ctl.sock" status
	step "$T" vm "$dir/ctl.sock" snapshot 0
	sleep 1
	step "$T" vm "$dir/ctl.sock" merge 0
	# A live backup of the running guest: freeze it through its VSS
	# service, snapshot, thaw, back up the frozen image, merge back live;
	# the second one is incremental (the VMM's change tracking).
	step "$T" backup init "$dir/vmrepo"
	step "$T" backup create "$dir/vmrepo" --vm "$dir/ctl.sock"
	sleep 1
	step "$T" backup create "$dir/vmrepo" --vm "$dir/ctl.sock"
	step "$T" backup list "$dir/vmrepo"
	sleep 1
	kill -TERM "$vm"
	rc=0
	wait "$vm" || rc=$?
	grep -v 'records: flushed' "$dir/vm.err" || true
	echo "vmm-mini exited $rc"
	flushed=$(grep -o 'records: flushed 0:[0-9]*' "$dir/vm.err" | tail -n 1 | sed 's/.*://')
	step "$VMM" check-records "$dir/vm-disk.vhd,flushed=${flushed:-0}"
	step "$T" check "$dir/vm-disk.vhd"
fi
