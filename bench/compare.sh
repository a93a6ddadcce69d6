#!/usr/bin/env bash
# //bench:compare: runs every benchmark binary (built -c opt by the
# `optimized` transition, see BUILD) through compare.py.
#
# Debian's python3 is used on purpose: it is the one that has
# python3-matplotlib (bazelw installs both); a python3 earlier on PATH (a
# pyenv, a virtualenv) may lack it.
set -euo pipefail
runfiles="${RUNFILES_DIR:-$0.runfiles}"
bindir="${runfiles}/shmheap/bench"
python=/usr/bin/python3
[[ -x "${python}" ]] || python=python3
exec "${python}" "${bindir}/compare.py" --bindir "${bindir}" "$@"
