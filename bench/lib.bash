# Sourced by bench/*.sh: helpers every benchmark uses.

# median: the middle value (the lower middle of an even count) of the
# numbers on stdin, one a line; "-" when there are none.
median() { sort -g | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : "-" }'; }

# interleave REPS GROUP...: REPS rounds; each round runs v_NAME for every
# NAME of every GROUP (a group: names separated by spaces), each group
# starting with a different one each round (who runs first after another
# group's work may pay for reclaiming its memory).
interleave() {
	local reps=$1 r g n k vs
	shift
	for r in $(seq 1 "$reps"); do
		echo "round $r of $reps"
		for g in "$@"; do
			read -r -a vs <<< "$g"
			n=${#vs[@]}
			for k in $(seq 0 $((n - 1))); do
				"v_${vs[$(( (k + r) % n ))]}"
			done
		done
	done
}
