#!/bin/bash
# make install / make uninstall into a scratch DESTDIR with PREFIX=/usr:
# the programs, the man pages and the bash completion are installed, the
# man pages render, the installed vhdtool answers --version, and uninstall
# removes every file install put there.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/../lib.bash"

# The build this test run uses (make check SANITIZE=1 runs from build-san).
mk=(make -C "$root" --no-print-directory -s PREFIX=/usr DESTDIR="$dir/root")
case ${BUILD:-build} in
build-san) mk+=(SANITIZE=1) ;;
build-tsan) mk+=(TSAN=1) ;;
esac
# A nested make must not join the jobserver of a `make check` around us.
unset MAKEFLAGS MAKELEVEL MFLAGS

"${mk[@]}" install >"$dir/log" 2>&1 || fail "make install: $(cat "$dir/log")"

d=$dir/root/usr
files=("$d/bin/vhdtool" "$d/share/man/man1/vhdtool.1"
       "$d/share/bash-completion/completions/vhdtool")
for p in "$root"/*/main.c; do   # each program MODULE/main.c, if any
	[ -e "$p" ] || continue
	prog=$(basename "$(dirname "$p")")
	files+=("$d/bin/$prog")
	[ -e "$root/docs/man/$prog.1" ] && files+=("$d/share/man/man1/$prog.1")
done
for f in "${files[@]}"; do
	[ -f "$f" ] || fail "not installed: ${f#$dir/root}"
done
[ -x "$d/bin/vhdtool" ] || fail "vhdtool is not executable"
# The example systemd units, pointing at the installed program.
for u in "$root"/contrib/systemd/*.socket "$root"/contrib/systemd/*.service "$root"/contrib/systemd/*.timer; do
	f=$d/lib/systemd/system/$(basename "$u")
	[ -f "$f" ] || fail "unit not installed: ${f#$dir/root}"
	! grep -q /usr/local/bin "$f" || fail "$(basename "$u") still names /usr/local/bin"
done
grep -q "^ExecStart=/usr/bin/vhdtool serve" "$d/lib/systemd/system/vhdtool-nbd@.service" ||
	fail "vhdtool-nbd@.service does not start /usr/bin/vhdtool"

# --version from the installed path: "vhdtool VERSION", VERSION from the
# VERSION file.
out=$("$d/bin/vhdtool" --version) || fail "vhdtool --version failed"
[ "$(echo "$out" | wc -l)" = 1 ] || fail "--version printed more than one line: $out"
case $out in
"vhdtool $(cat "$root/VERSION")"*) ;;
*) fail "--version printed '$out'" ;;
esac
# The completion script loads in bash and registers vhdtool.
bash -c "source '$d/share/bash-completion/completions/vhdtool' && complete -p vhdtool" \
	>/dev/null 2>&1 || fail "the bash completion does not load"

# The man pages render without warnings.
if command -v groff >/dev/null; then
	for m in "$d"/share/man/man1/*.1; do
		groff -man -Tutf8 -ww -z "$m" 2>"$dir/groff" || fail "groff failed on $m"
		[ -s "$dir/groff" ] && fail "groff warns on ${m##*/}: $(cat "$dir/groff")"
		n=$(groff -man -Tutf8 -P-cbou "$m" 2>/dev/null | wc -l)
		[ "$n" -gt 20 ] || fail "${m##*/} renders to only $n lines"
	done
	groff -man -Tutf8 -P-cbou "$d/share/man/man1/vhdtool.1" 2>/dev/null | grep -q "EXIT STATUS" ||
		fail "vhdtool.1 has no EXIT STATUS section"
else
	echo "note: groff is not installed; the man pages were not rendered"
fi

"${mk[@]}" uninstall >"$dir/log" 2>&1 || fail "make uninstall: $(cat "$dir/log")"
left=$(find "$dir/root" -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "ok"
