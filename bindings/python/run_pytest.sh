#!/usr/bin/env bash
# Runs the binding's pytest suite with Debian's interpreter (never the first
# python3 on PATH) against the package in the runfiles tree
# (bindings/python/shmheap: __init__.py beside the Bazel-built _shmheap.so).
set -euo pipefail
python=/usr/bin/python3
here="$PWD/bindings/python"
[[ -f "$here/shmheap/_shmheap.so" ]] ||
  { echo "FAIL: $here/shmheap/_shmheap.so is not built (run through bazel)" >&2; exit 1; }
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
# pytest exits 5 when it collected no test: that is a failure here too.
exec "$python" -m pytest -p no:cacheprovider -q -rs "$@"
