#!/usr/bin/env bash
# Runs a Python example with Debian's interpreter against the Bazel-built
# package (bindings/python in the runfiles tree).
set -euo pipefail
runfiles="${RUNFILES_DIR:-$0.runfiles}"
[[ -d "$runfiles/shmheap/bindings/python/shmheap" ]] || runfiles="$PWD/.."
script="$1"
shift
export PYTHONPATH="$runfiles/shmheap/bindings/python"
exec /usr/bin/python3 "$runfiles/shmheap/examples/python/$script" "$@"
