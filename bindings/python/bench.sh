#!/usr/bin/env bash
# //bindings/python:bench: bench.py with Debian's interpreter against the
# package built -c opt (the `optimized` transition of //bench:opt.bzl, so the
# library under the extension is -O2 too). Arguments go to bench.py.
set -euo pipefail
runfiles="${RUNFILES_DIR:-$0.runfiles}"
export PYTHONPATH="$runfiles/shmheap/bindings/python"
# -P: the script sits in bindings/python, whose shmheap/ has no extension.
exec /usr/bin/python3 -P "$runfiles/shmheap/bindings/python/bench.py" "$@"
