#!/bin/bash
# Progress (-p) is drawn with \r only on a terminal; into a file or a pipe
# it is a line every 10% (convert, compact, merge, backup create and
# restore share one printer).  backup create/restore -p used to write \r
# into logs.  The terminal case runs under script(1) when it exists.
set -u
T=${VHDTOOL:?}
. "$(dirname "$0")/../lib.bash"
cd "$dir" || fail cd
head -c 24M /dev/urandom > src.raw
"$T" convert src.raw a.vhd || fail convert
"$T" backup init repo >/dev/null || fail "backup init"

no_cr() {   # NAME FILE: lines with percentages, no carriage return
	grep -q $'\r' "$2" && fail "$1 wrote \\r into a file: $(od -c "$2" | head -3)"
	grep -q "%" "$2" || fail "$1 -p printed no progress: $(cat "$2")"
	[ "$(grep -c "%" "$2")" -le 12 ] || fail "$1 printed more than a line every 10%: $(wc -l < "$2") lines"
}
"$T" convert -p -O raw a.vhd b.raw 2> conv.err || fail "convert -p"
no_cr convert conv.err
"$T" backup create -p repo a.vhd > /dev/null 2> bc.err || fail "backup create -p"
grep -v "^backup [0-9T]*Z-" bc.err > bc.prog
no_cr "backup create" bc.prog
"$T" backup restore -p repo latest r.raw 2> br.err || fail "backup restore -p"
no_cr "backup restore" br.err
cmp -s r.raw src.raw || fail "restore differs"

# On a terminal: the bar redrawn in place.
if command -v script >/dev/null; then
	script -qec "'$T' backup restore -p --force repo latest r2.raw" /dev/null > tty.out 2>&1 ||
		fail "restore -p on a terminal: $(cat tty.out)"
	# (The terminal turns every \n into \r\n: look for a \r that
	# starts a redraw.)
	python3 -c 'import re,sys; sys.exit(not re.search(rb"\r[^\n]", open(sys.argv[1], "rb").read()))' tty.out ||
		fail "no bar redrawn with \\r on a terminal: $(od -c tty.out | head -3)"
fi
echo "progress draws \\r only on a terminal"
