"""shmheap_fuzzer: a fuzz target, built as a regression test and a fuzzer."""

load("//:shmheap.bzl", "SHMHEAP_COPTS")

def shmheap_fuzzer(name, srcs, deps = [], mutations = 200):
    """Declares a fuzz target's library, its replay test and its fuzzer.

    The target's sources define LLVMFuzzerTestOneInput; its seed corpus lives
    in corpus/<name>/.

    <name>_lib     the sources (alwayslink: the entry point is only referenced
                   by the driver, which links after them).
    <name>_replay  cc_test: fuzz/replay_main.cc runs the target over every
                   corpus file and `mutations` deterministic mutations of
                   each. Part of `bazel test //...` in every config.
    <name>         with --config=fuzz (define fuzzer=libfuzzer): the libFuzzer
                   binary; otherwise the same replay driver, so the target
                   builds anywhere. Tagged manual: //... leaves it out.

    Args:
      name: the target's name, also its corpus directory's.
      srcs: sources that define LLVMFuzzerTestOneInput.
      deps: their dependencies.
      mutations: mutations per corpus file in the replay test.
    """
    native.cc_library(
        name = name + "_lib",
        testonly = True,
        srcs = srcs,
        copts = SHMHEAP_COPTS,
        deps = deps,
        alwayslink = True,
    )
    native.filegroup(
        name = name + "_corpus",
        srcs = native.glob(["corpus/%s/*" % name]),
    )
    native.cc_test(
        name = name + "_replay",
        srcs = ["replay_main.cc"],
        args = [
            "--mutations=%d" % mutations,
            "$(locations :%s_corpus)" % name,
        ],
        copts = SHMHEAP_COPTS,
        data = [":%s_corpus" % name],
        deps = [":%s_lib" % name],
    )
    native.cc_binary(
        name = name,
        testonly = True,
        srcs = select({
            "//fuzz:libfuzzer": [],
            "//conditions:default": ["replay_main.cc"],
        }),
        copts = SHMHEAP_COPTS,
        linkopts = select({
            "//fuzz:libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["manual"],
        deps = [":%s_lib" % name],
    )
