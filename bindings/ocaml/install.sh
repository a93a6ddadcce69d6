#!/usr/bin/env bash
# Installs the findlib package `shmheap` (native code: shmheap.cmxa, its
# .cmi/.cmx/.mli, and libshmheap_stubs.a, which holds the stubs, the C ABI
# and the library; its link flags are recorded in the cmxa).
#
#   ./bazelw run //bindings/ocaml:install                  # into `ocamlfind printconf destdir`
#   ./bazelw run //bindings/ocaml:install -- --destdir DIR # into DIR (created)
#
# A package already installed there is replaced. Use it with
#   ocamlfind ocamlopt -package shmheap -linkpkg main.ml
# or `(libraries shmheap)` in dune; with --destdir, put DIR in OCAMLPATH.
set -euo pipefail

usage() {
  echo "usage: install [--destdir DIR]" >&2
  exit 2
}

destdir=""
while (($#)); do
  case "$1" in
    --destdir) (($# >= 2)) || usage; destdir="$2"; shift 2 ;;
    --destdir=*) destdir="${1#--destdir=}"; shift ;;
    *) usage ;;
  esac
done

# The package's files: in the runfiles tree, which is the working directory
# under `bazel run` and `bazel test`, or next to this script's runfiles.
root="$PWD"
if [[ ! -f "$root/bindings/ocaml/META" ]]; then root="$0.runfiles/shmheap"; fi
pkg="$root/bindings/ocaml/shmheap"
[[ -f "$root/bindings/ocaml/META" && -f "$pkg/shmheap.cmxa" ]] ||
  { echo "install: the package's files are not built (run it through bazel)" >&2; exit 1; }

if [[ -z "$destdir" ]]; then
  destdir="$(ocamlfind printconf destdir)"
elif [[ "$destdir" != /* && -n "${BUILD_WORKING_DIRECTORY:-}" ]]; then
  destdir="$BUILD_WORKING_DIRECTORY/$destdir" # relative to where bazel ran
fi
mkdir -p "$destdir"
if [[ -e "$destdir/shmheap/META" ]]; then
  ocamlfind remove -destdir "$destdir" shmheap >/dev/null
fi
ocamlfind install -destdir "$destdir" shmheap "$root/bindings/ocaml/META" \
  "$pkg/shmheap.cmi" "$pkg/shmheap.cmx" "$pkg/shmheap.cmxa" "$pkg/shmheap.a" \
  "$pkg/shmheap.mli" "$pkg/libshmheap_stubs.a"
echo "install: shmheap in $destdir/shmheap"
