"""Builds benchmark binaries optimized, whatever -c the command line says.

Why: the repository builds fastbuild by default (its tests rely on asserts),
and `bazel run` cannot change -c on its own. Benchmark figures from -O0 code
would be meaningless, and -O2 in the benchmarks' copts alone would leave the
library they measure at -O0. So `optimized` depends on its srcs through a
transition to compilation_mode=opt, which rebuilds them and everything
below them (the library included) with -O2 -DNDEBUG in a configuration of
their own, and hands their files on as runfiles.
"""

def _opt_transition_impl(settings, attr):
    return {"//command_line_option:compilation_mode": "opt"}

_opt_transition = transition(
    implementation = _opt_transition_impl,
    inputs = [],
    outputs = ["//command_line_option:compilation_mode"],
)

def _optimized_impl(ctx):
    files = depset(transitive = [t[DefaultInfo].files for t in ctx.attr.srcs])
    runfiles = ctx.runfiles(transitive_files = files)
    for t in ctx.attr.srcs:
        runfiles = runfiles.merge(t[DefaultInfo].default_runfiles)
    return [DefaultInfo(files = files, runfiles = runfiles)]

optimized = rule(
    implementation = _optimized_impl,
    doc = "The srcs, built with -c opt; their files and runfiles as ours.",
    attrs = {
        "srcs": attr.label_list(cfg = _opt_transition),
        # Bazel requires this attribute on rules with Starlark transitions.
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)
