#!/bin/bash
# The chain depth limit (32 layers, what open accepts) is applied
# everywhere: a snapshot of a leaf that already has 32 layers is refused
# (it used to create an image no command could open), and check reports a
# chain deeper than open accepts (it used to say "no problems").
set -u
T=${VHDTOOL:?}
BUILD=${BUILD:-build}
PATCH=$PWD/$BUILD/tests/helpers/vhdpatch
. "$(dirname "$0")/../lib.bash"
[ -x "$PATCH" ] || skip "helper $PATCH not built"
cd "$dir"

"$T" create l1.vhd 4M >/dev/null || fail create
for i in $(seq 2 32); do
	"$T" snapshot l$((i - 1)).vhd l$i.vhd || fail "snapshot $i"
done
printf 'deep' | "$T" write l32.vhd 0 || fail "the 32nd layer cannot be written"
"$T" check l32.vhd >/dev/null || fail "check of 32 layers: $("$T" check l32.vhd)"

"$T" snapshot l32.vhd l33.vhd 2>err && fail "a 33rd layer was created"
grep -q "32 layers" err || fail "unclear refusal: $(cat err)"
[ ! -e l33.vhd ] || fail "refused snapshot left a file"
"$T" create --parent l32.vhd l33.vhd 2>err && fail "create --parent made a 33rd layer"
"$T" serve --snapshot --socket s.sock --once l32.vhd 2>err && fail "serve --snapshot over 32 layers started"
grep -q "32 layers" err || fail "serve --snapshot refusal unclear: $(cat err)"

# A 33rd layer made by hand (the bottom layer replaced by a child of a new
# base, with the old bottom's UUID): check now says what is wrong, with the
# same limit open applies.
uuid=$("$PATCH" l1.vhd ?foot.uuid) || fail "read uuid"
mv l1.vhd l1.dyn
"$T" create l0.vhd 4M >/dev/null && "$T" create --parent l0.vhd l1.vhd || fail "new bottom"
"$PATCH" l1.vhd foot.uuid="$uuid" || fail "patch uuid"
"$T" read l32.vhd 0 4 >/dev/null 2>err && fail "open accepted 33 layers"
grep -q "too deep" err || fail "open refusal unclear: $(cat err)"
"$T" check l32.vhd >out 2>&1; rc=$?
[ "$rc" = 2 ] || fail "check of 33 layers exited $rc: $(cat out)"
grep -q "chain too deep" out || fail "check does not report the depth: $(cat out)"
"$T" check l31.vhd >/dev/null || fail "32 layers reported: $("$T" check l31.vhd)"
echo "33rd layer refused; check applies the open limit"
