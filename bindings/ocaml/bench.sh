#!/usr/bin/env bash
# //bindings/ocaml:bench: bench_cpp_get (C++ Heap::Get against the C ABI's
# get, for the overhead over C++), then bench.ml's table, both built -c opt (the
# `optimized` transition of //bench:opt.bzl, so the library is -O2 too).
set -euo pipefail
runfiles="${RUNFILES_DIR:-$0.runfiles}"
dir="$runfiles/shmheap/bindings/ocaml"
cpp=()
while read -r tag n cpp_ns cabi_ns; do
  if [[ "$tag" == cpp_get ]]; then
    echo "C++ Heap::Get of $n float64: $cpp_ns ns; through the C ABI: $cabi_ns ns"
    cpp+=(--cpp "$n:$cpp_ns:$cabi_ns")
  fi
done < <("$dir/bench_cpp_get")
exec "$dir/bench_ocaml" "${cpp[@]}"
