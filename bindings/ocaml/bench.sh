#!/usr/bin/env bash
# //bindings/ocaml:bench: bench_cpp_get (C++ Heap::Get, the baseline for the
# per-call overhead), then bench.ml's table, both built -c opt (the
# `optimized` transition of //bench:opt.bzl, so the library is -O2 too).
set -euo pipefail
runfiles="${RUNFILES_DIR:-$0.runfiles}"
dir="$runfiles/shmheap/bindings/ocaml"
cpp=()
while read -r tag n ns; do
  if [[ "$tag" == cpp_get ]]; then cpp+=(--cpp-get "$n:$ns"); fi
done < <("$dir/bench_cpp_get")
exec "$dir/bench_ocaml" "${cpp[@]}"
