#!/usr/bin/env bash
# Runs both Python examples small: each exits 1 unless its results check
# out, and what they print is checked here too.
set -euo pipefail
export PYTHONPATH="$PWD/bindings/python"
out="$(/usr/bin/python3 examples/python/pool_arrays.py --tasks 16 --n 128)"
echo "$out"
grep -q "sums agree: True" <<<"$out"
grep -q "(in place: True)" <<<"$out"
out="$(/usr/bin/python3 examples/python/spawn_workers.py --workers 8 --n 64)"
echo "$out"
grep -q "correctly: True; the parent too: True" <<<"$out"
grep -q "^8 spawn workers attached" <<<"$out"
echo "2 passed, 0 failed"
