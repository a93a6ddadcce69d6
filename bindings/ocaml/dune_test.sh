#!/usr/bin/env bash
# The install path as a user meets it: installs the package into a fresh
# destdir under TEST_TMPDIR (nothing outside it is touched), then builds
# testdata/dune_project with Debian's dune and, again, with plain ocamlfind
# against it (OCAMLPATH), runs both and checks what they print.
set -euo pipefail

tmp="${TEST_TMPDIR:?}"
dest="$tmp/destdir"
bash bindings/ocaml/install.sh --destdir "$dest"
[[ -f "$dest/shmheap/META" && -f "$dest/shmheap/libshmheap_stubs.a" ]] ||
  { echo "FAIL: install left no package in $dest" >&2; exit 1; }
export OCAMLPATH="$dest"
export OCAMLFIND_DESTDIR="$dest"
export HOME="$tmp" XDG_CACHE_HOME="$tmp/cache" DUNE_CACHE=disabled
ocamlfind list 2>/dev/null | grep -q '^shmheap ' ||
  { echo "FAIL: ocamlfind does not see the installed package" >&2; exit 1; }

want="matrix 100x10 from the worker: sum 499500, read in place: true"
project="$tmp/project"
rm -rf "$project"
cp -r bindings/ocaml/testdata/dune_project "$project"
chmod -R u+w "$project"
(cd "$project" && dune build --root . ./main.exe)
got="$("$project/_build/default/main.exe")"
if [[ "$got" != "$want" ]]; then
  echo "FAIL: the dune-built program printed '$got', want '$want'" >&2
  exit 1
fi
echo "dune: $got"

(cd "$project" && ocamlfind ocamlopt -package shmheap,unix -linkpkg main.ml -o main_findlib)
got="$("$project/main_findlib")"
if [[ "$got" != "$want" ]]; then
  echo "FAIL: the ocamlfind-built program printed '$got', want '$want'" >&2
  exit 1
fi
echo "ocamlfind: $got"
echo "2 passed, 0 failed"
