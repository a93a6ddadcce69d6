#!/usr/bin/env bash
# fuzz/run_fuzzers.sh [SECONDS]: the CI fuzzing step. Builds every libFuzzer
# target with clang (--config=fuzz: ASan + UBSan + libFuzzer) and runs each
# for SECONDS (default 60) over a scratch copy of its checked-in corpus
# (fuzz/corpus/<target>/ is never written). Prints each target's executions
# and new corpus units; fails on any crash, sanitizer report, leak or
# timeout, and keeps the failing input under the printed directory.
#
# The build uses an output base of its own (SHMHEAP_FUZZ_OUTPUT_BASE, by
# default under ~/.cache), because --config=fuzz re-runs Bazel's C++
# autoconfiguration with clang: in the workspace's usual output base, the
# next gcc build would configure back and rebuild everything. Its Bazel
# server is shut down at the end, so it holds no memory between runs; its
# action cache stays, so a second run rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
targets=(open_verify_fuzzer blob_view_fuzzer)
labels=()
for target in "${targets[@]}"; do labels+=("//fuzz:$target"); done
workspace_id="$(pwd | md5sum | cut -c1-12)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
output_base="${SHMHEAP_FUZZ_OUTPUT_BASE:-$cache/shmheap-fuzz/$workspace_id}"
bazel=(./bazelw --output_base="$output_base")
start=$(date +%s)

trap '"${bazel[@]}" shutdown >/dev/null 2>&1 || true' EXIT
# --symlink_prefix=/: leave the workspace's bazel-* links to the usual
# output base. The build's output is shown only when it fails.
build_log="$(mktemp)"
if ! "${bazel[@]}" build --config=fuzz --symlink_prefix=/ \
    "${labels[@]}" >"$build_log" 2>&1; then
  tail -n 80 "$build_log"
  echo "run_fuzzers: build failed" >&2
  exit 1
fi
rm -f "$build_log"
bin="$("${bazel[@]}" info --config=fuzz bazel-bin 2>/dev/null)"
echo "run_fuzzers: built in $(($(date +%s) - start)) s"

work="$(mktemp -d "${TMPDIR:-/tmp}/shmheap-fuzz.XXXXXX")"
failed=0
for target in "${targets[@]}"; do
  mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
  cp fuzz/corpus/"$target"/* "$work/$target/corpus/"
  log="$work/$target/log"
  # -timeout: one input running 10 s is a hang. -rss_limit_mb: ASan's
  # quarantine plus the memfd images stay far below it. The corpus copy is
  # the only directory given, so new units go there and not into git.
  if ! (cd "$work/$target" && "$bin/fuzz/$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
      -print_final_stats=1 -print_funcs=0 -print_pcs=0 \
      -artifact_prefix="$work/$target/artifacts/" corpus >"$log" 2>&1); then
    failed=1
    grep -v "^#[0-9]" "$log" | tail -n 60
    echo "run_fuzzers: $target FAILED; input and log in $work/$target" >&2
    continue
  fi
  stat_of() { awk -v k="stat::$1:" '$1 == k { print $2 }' "$log"; }
  echo "run_fuzzers: $target: $(stat_of number_of_executed_units)" \
    "executions in ${seconds} s ($(stat_of average_exec_per_sec)/s)," \
    "$(stat_of new_units_added) new units, peak RSS" \
    "$(stat_of peak_rss_mb) MB"
done
echo "run_fuzzers: done in $(($(date +%s) - start)) s"
if ((failed)); then exit 1; fi
rm -rf "$work"
