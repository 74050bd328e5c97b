# Wall-clock timing for the bench/*/run scripts (sourced): one way to time a step.
#   t0=$(now); COMMAND; took=$(since "$t0")     # seconds, 3 decimals
# Both read bash's $EPOCHREALTIME instead of running date(1): starting a program inside the
# timed span costs a few milliseconds, a tenth of the 35 ms `wc -l` floor shard-route's
# benchmark divides by.
now() { printf '%s\n' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}'; }
