#!/usr/bin/env bash
# Runs an OCaml test executable and checks it: exit status 0 and a closing
# line "N passed, 0 failed" with N > 0 (so a test that ran nothing fails).
set -uo pipefail
bin="$1"
shift
out="${TEST_TMPDIR:-/tmp}/$(basename "$bin").out"
"$bin" "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
last="$(tail -n 1 "$out")"
if [[ $status -ne 0 ]]; then
  echo "FAIL: $(basename "$bin") exited $status" >&2
  exit 1
fi
if ! [[ "$last" =~ ^([0-9]+)\ passed,\ 0\ failed$ ]] || ((BASH_REMATCH[1] == 0)); then
  echo "FAIL: want a closing line 'N passed, 0 failed' with N > 0, got '$last'" >&2
  exit 1
fi
