"""Debian's Python and numpy headers as a Bazel repository: nothing downloaded.

`system_python` (in WORKSPACE) runs /usr/bin/python3 (never the first
python3 on PATH: that may be a pyenv or a venv without numpy) once, asks it
for its include directory and numpy's, and links both into a local
repository with two cc_library targets:

  @system_python//:python_headers   Python.h and friends
  @system_python//:numpy_headers    numpy/arrayobject.h (the C API the
                                    extension uses to make arrays)

An extension module links against neither library: the interpreter
provides libpython's symbols when it loads the module, and numpy's C API is
a table of function pointers fetched at import (import_array).
"""

_PROBE = """
import sysconfig, sys
try:
    import numpy
except ImportError:
    sys.exit("numpy is not installed for /usr/bin/python3 (Debian: python3-numpy)")
print(sysconfig.get_paths()["include"])
print(numpy.get_include())
"""

_BUILD = """
package(default_visibility = ["//visibility:public"])

# {python} {version}
cc_library(
    name = "python_headers",
    hdrs = glob(["python_include/**/*.h"]),
    includes = ["python_include"],
)

cc_library(
    name = "numpy_headers",
    hdrs = glob(["numpy_include/**/*.h"]),
    includes = ["numpy_include"],
)
"""

def _system_python_impl(ctx):
    python = ctx.attr.interpreter
    r = ctx.execute([python, "-c", _PROBE])
    if r.return_code != 0:
        fail("system_python: %s failed: %s%s" % (python, r.stdout, r.stderr))
    include, numpy_include = r.stdout.strip().split("\n")
    ctx.symlink(include, "python_include")
    ctx.symlink(numpy_include, "numpy_include")
    v = ctx.execute([python, "--version"])
    ctx.file("BUILD", _BUILD.format(python = python, version = v.stdout.strip()))

system_python = repository_rule(
    implementation = _system_python_impl,
    doc = "Debian's Python and numpy headers (see the file's docstring).",
    attrs = {"interpreter": attr.string(default = "/usr/bin/python3")},
    local = True,
)
