#!/usr/bin/env bash
# The typecheck command line: usage errors are one line and exit 2, a bad
# directory exits 1 with one line, and a run over examples/testdata prints
# its summary with identical digests and a passing Verify.
set -uo pipefail

bin="$1"
tree="examples/testdata"
fail=0
out="${TEST_TMPDIR:-/tmp}/typecheck_cli_test.out"
err="${TEST_TMPDIR:-/tmp}/typecheck_cli_test.err"

# expect_exit CODE ARGS...: runs the binary, checks its exit status.
expect_exit() {
  local want="$1"
  shift
  "$bin" "$@" >"$out" 2>"$err"
  local got=$?
  if [[ "$got" != "$want" ]]; then
    echo "FAIL: typecheck $* exited $got, want $want" >&2
    cat "$out" "$err" >&2
    fail=1
  fi
}

# expect_one_line_error PATTERN: stderr is exactly one line matching it.
expect_one_line_error() {
  if [[ $(wc -l <"$err") != 1 ]] || ! grep -q -- "$1" "$err"; then
    echo "FAIL: want one line matching '$1' on stderr, got:" >&2
    cat "$err" >&2
    fail=1
  fi
}

expect_exit 2 --workers 0 "$tree"
expect_one_line_error "usage error: --workers needs a number from 1 to 1024"
expect_exit 2 --workers many "$tree"
expect_one_line_error "usage error: --workers"
expect_exit 2 --change 2 "$tree"
expect_one_line_error "usage error: --change needs a fraction"
expect_exit 2 --frobnicate "$tree"
expect_one_line_error "usage error: unknown flag --frobnicate"
expect_exit 1 "$tree/no/such/dir"
expect_one_line_error "not a directory"
# Errors are the library's messages, without absl's code names.
if grep -qE "NOT_FOUND|INTERNAL|UNAVAILABLE|DATA_LOSS" "$err"; then
  echo "FAIL: an internal code name in the error:" >&2
  cat "$err" >&2
  fail=1
fi

expect_exit 0 --help
grep -q "^usage: typecheck" "$out" || { echo "FAIL: --help" >&2; fail=1; }

for args in "--workers 4" "--workers=3 --change 0.5" "--serial"; do
  # shellcheck disable=SC2086
  expect_exit 0 $args "$tree"
  for want in "^summary" "files        12," "digest .*: identical" \
              "verify       OK" "collection   heap"; do
    if ! grep -q -- "$want" "$out"; then
      echo "FAIL: typecheck $args: no line matching '$want' in:" >&2
      cat "$out" >&2
      fail=1
    fi
  done
done
# Not a terminal: plain lines, no carriage returns.
if grep -q $'\r' "$out"; then
  echo "FAIL: progress bar drawn on a pipe" >&2
  fail=1
fi

# -I: analysed alone, base/list.h's <base/types.h> is not found (the search
# path is the DIR itself); with the tree's root searched first it is.
expect_exit 0 --workers 2 "$tree/base"
grep -q "includes     2 resolved, 1 unresolved" "$out" ||
  { echo "FAIL: without -I:" >&2; cat "$out" >&2; fail=1; }
expect_exit 0 --workers 2 -I "$tree/util" -I"$tree" "$tree/base"
grep -q "search path: $tree/util $tree $tree/base" "$out" &&
  grep -q "includes     3 resolved, 0 unresolved" "$out" ||
  { echo "FAIL: with -I:" >&2; cat "$out" >&2; fail=1; }
expect_exit 2 "$tree/base" -I
expect_one_line_error "usage error: -I needs a directory"

# Stopping: SIGTERM to a run over /usr/include (seconds of work) once it
# has printed its first line (the handlers are installed before it): the
# workers finish their file and exit, the summary says what was done, and
# the exit status is 130. (SIGINT takes the same path, but a background
# job of this non-interactive shell starts with SIGINT ignored, which the
# program respects; typecheck_test raises SIGINT itself.)
if [[ -d /usr/include ]]; then
  "$bin" --workers 2 --no-check /usr/include >"$out" 2>"$err" &
  pid=$!
  for _ in $(seq 100); do
    grep -q "^typecheck: /usr/include" "$out" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.5
  kill -TERM "$pid"
  wait "$pid"
  got=$?
  if [[ "$got" != 130 ]]; then
    echo "FAIL: SIGTERM: exit status $got, want 130" >&2
    cat "$out" "$err" >&2
    fail=1
  fi
  for want in "^stopped" "the stop came in [a-z]*, with [0-9]* of its" \
              "each worker finished the file it was on"; do
    if ! grep -q -- "$want" "$out"; then
      echo "FAIL: SIGTERM: no line matching '$want' in:" >&2
      cat "$out" >&2
      fail=1
    fi
  done
  expect_one_line_error "typecheck: stopped by a signal in"
fi

exit "$fail"
