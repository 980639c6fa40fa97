#!/bin/bash
# A parent whose path the VHD locator format cannot carry is refused at
# snapshot time with one clear line (a backslash is the separator inside
# locators: the child used to be created and could never open its parent
# again); names that do round-trip (spaces, colons, non-ASCII) still work,
# and the child opens after the pair is moved elsewhere.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
cd "$dir"

for name in 'back\slash.vhd' 'sub\dir/p.vhd'; do
	mkdir -p "$(dirname "$name")"
	"$T" create "$name" 4M >/dev/null || fail "create $name"
	"$T" snapshot "$name" child.vhd 2>err && fail "snapshot of '$name' accepted"
	grep -q "backslash" err || fail "unclear refusal for '$name': $(cat err)"
	[ "$(wc -l < err)" = 1 ] || fail "more than one line: $(cat err)"
	[ ! -e child.vhd ] || fail "a refused snapshot left child.vhd"
	"$T" create --parent "$name" child.vhd 2>/dev/null && fail "create --parent '$name' accepted"
done

mkdir a
for name in 'with space.vhd' 'c:colon.vhd' 'ünïcødé.vhd'; do
	"$T" create "a/$name" 4M >/dev/null || fail "create $name"
	printf 'base' | "$T" write "a/$name" 0 || fail "write $name"
	"$T" snapshot "a/$name" "a/child-$name" || fail "snapshot of '$name'"
	[ "$("$T" read "a/child-$name" 0 4)" = base ] || fail "child of '$name' cannot read its parent"
done
mv a b
for name in 'with space.vhd' 'c:colon.vhd' 'ünïcødé.vhd'; do
	[ "$("$T" read "b/child-$name" 0 4)" = base ] || fail "child of '$name' lost its parent after a move"
done
echo "names a locator cannot carry are refused; the others round-trip"
