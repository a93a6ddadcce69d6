"""Builds and installs the `shmheap` package outside Bazel:

    python3 -m pip install ./bindings/python --no-build-isolation

(from the repository root; offline: nothing is downloaded, setuptools and
numpy come from Debian's python3-setuptools and python3-numpy). It compiles
the library itself (every non-test .cc of heap/, hashtable/, gc/, capi/ and
shmheap.cc, with g++ -std=c++20 -O2) into a static archive, then the C
extension (src/_shmheap.c) against it; the link flags for Debian's Abseil and
xxHash are read from third_party/BUILD, the one place Bazel keeps them too.
pip builds in the source tree, so the repository must be whole around this
directory (SHMHEAP_SOURCE_ROOT names another root). Exercised by
//bindings/python:install_test.
"""

import glob
import os
import re

import numpy
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SHMHEAP_SOURCE_ROOT",
                      os.path.dirname(os.path.dirname(HERE)))


def library_sources():
    srcs = [os.path.join(ROOT, "shmheap.cc")]
    for d in ("heap", "hashtable", "gc", "capi"):
        srcs += sorted(
            s for s in glob.glob(os.path.join(ROOT, d, "*.cc"))
            if not s.endswith("_test.cc"))
    missing = [s for s in srcs if not os.path.isfile(s)]
    if missing or len(srcs) < 2:
        raise SystemExit("setup.py: the library's sources are not under %s "
                         "(set SHMHEAP_SOURCE_ROOT)" % ROOT)
    return srcs


def system_link_flags():
    """The -l flags of third_party/BUILD's absl and xxhash targets."""
    text = open(os.path.join(ROOT, "third_party", "BUILD")).read()
    libs = []
    for name in ("absl", "xxhash"):
        m = re.search(r'name = "%s",\s*linkopts = \[(.*?)\]' % name, text,
                      re.S)
        if m is None:
            raise SystemExit("setup.py: no %s linkopts in third_party/BUILD"
                             % name)
        libs += re.findall(r'"-l([^"]+)"', m.group(1))
    return libs


setup(
    name="shmheap",
    version="0.1.0",
    description="A shared, lock-free dict of numpy arrays across processes",
    packages=["shmheap"],
    package_data={"shmheap": ["__init__.pyi", "py.typed"]},
    libraries=[(
        "shmheap_core",
        {
            "sources": library_sources(),
            "include_dirs": [ROOT],
            "cflags": ["-std=c++20", "-O2", "-fPIC", "-DNDEBUG"],
        },
    )],
    ext_modules=[
        Extension(
            "shmheap._shmheap",
            sources=["src/_shmheap.c"],
            include_dirs=[ROOT, numpy.get_include()],
            extra_compile_args=["-std=c11", "-O2"],
            # build_clib's archive comes first, then what it needs.
            libraries=["shmheap_core"] + system_link_flags() + ["stdc++"],
        )
    ],
    python_requires=">=3.9",
    install_requires=["numpy"],
)
