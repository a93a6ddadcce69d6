#!/usr/bin/env bash
# Runs the OCaml examples small: each exits 0 only if its results agree,
# and says so in its output.
set -uo pipefail
matrices="$1"
parallel_map="$2"
fail=0
out="$("$matrices" --readers 8 --matrices 4 --dim 64)" || { echo "FAIL: matrices exited $?" >&2; fail=1; }
echo "$out"
grep -q "as expected" <<<"$out" && grep -q "sums agree" <<<"$out" || { echo "FAIL: matrices' sums" >&2; fail=1; }
out="$("$parallel_map" --workers 3 --n 100000)" || { echo "FAIL: parallel_map exited $?" >&2; fail=1; }
echo "$out"
grep -q "results agree" <<<"$out" && grep -q "in place: true" <<<"$out" || { echo "FAIL: parallel_map's results" >&2; fail=1; }
exit $fail
