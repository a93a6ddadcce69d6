#!/usr/bin/env bash
# The install path as a user meets it: copies the source tree (what a
# checkout has) under TEST_TMPDIR, makes a venv with Debian's python3 and
# its system site packages (numpy, setuptools), runs
#   pip install ./bindings/python --no-build-isolation --no-index
# in it, and runs testdata/installed_check.py with the venv's interpreter from
# outside the tree. Nothing outside TEST_TMPDIR is touched, nothing is
# downloaded (--no-index).
set -euo pipefail
tmp="${TEST_TMPDIR:?}"
src="$tmp/checkout"
rm -rf "$src"
mkdir -p "$src"
# Every file Bazel gave the test, dereferenced, at its repository path.
while IFS= read -r f; do
  mkdir -p "$src/$(dirname "$f")"
  cp -L "$f" "$src/$f"
done < <(find . \( -type f -o -type l \) \( -path './bindings/python/*' -o \
  -path './heap/*' -o -path './hashtable/*' -o -path './gc/*' -o \
  -path './capi/*' -o -path './third_party/*' -o -name 'shmheap.*' \) |
  sed 's|^\./||' | grep -v '^bindings/python/install_test')
rm -f "$src/bindings/python/shmheap/_shmheap.so" # built by pip, not Bazel

/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
export HOME="$tmp" PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
(cd "$src" && "$tmp/venv/bin/python" -m pip install --no-index \
  --no-build-isolation ./bindings/python) > "$tmp/pip.log" 2>&1 ||
  { cat "$tmp/pip.log" >&2; echo "FAIL: pip install" >&2; exit 1; }
tail -n 1 "$tmp/pip.log"

cp bindings/python/testdata/installed_check.py "$tmp/"
got="$(cd "$tmp" && "$tmp/venv/bin/python" installed_check.py)"
want="matrix 100x10 from the worker: sum 499500, read in place: True"
if [[ "$got" != "$want" ]]; then
  echo "FAIL: the installed package printed '$got', want '$want'" >&2
  exit 1
fi
echo "venv: $got"
# And the system interpreter outside the venv does not see it.
if (cd "$tmp" && /usr/bin/python3 -c 'import shmheap' 2>/dev/null); then
  echo "FAIL: the install leaked outside the venv" >&2
  exit 1
fi
echo "2 passed, 0 failed"
