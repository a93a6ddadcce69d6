"""Compiler flags shared by every shmheap target."""

SHMHEAP_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
]

def library_sources(name = "sources"):
    """A filegroup of the package's non-test .h and .cc files.

    For builds outside Bazel: bindings/python/setup.py (pip install) compiles
    them, and //bindings/python:install_test gets them through this.
    """
    native.filegroup(
        name = name,
        srcs = native.glob(
            [
                "*.h",
                "*.cc",
            ],
            exclude = ["*_test.cc"],
        ),
    )
