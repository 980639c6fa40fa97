# Sourced by bench/*.sh: helpers every benchmark uses.

# median: the middle value (the lower middle of an even count) of the
# numbers on stdin, one a line; "-" when there are none.
median() { sort -g | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : "-" }'; }
