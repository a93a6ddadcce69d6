"""Compiler flags shared by every shmheap target."""

SHMHEAP_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
]
