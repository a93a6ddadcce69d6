"""OCaml with Bazel 4, from Debian's compiler: no rules_ocaml, no download.

Two rules, both running Debian's `ocamlfind ocamlopt` (native code only):

  ocaml_stub_library  one OCaml module (.mli + .ml) with C stubs over C/C++
                      Bazel libraries. The stubs and every static library
                      the cc deps link (transitively) are merged into one
                      archive, lib<stubs>.a, and the cmxa records it and the
                      deps' link flags (-cclib), so a user of the installed
                      package links with nothing but the package.
  ocaml_binary        an executable from .ml files against such libraries.

The cc deps' link flags (third_party's -labsl_..., -lxxhash) come from their
CcInfo, so they are written in one place, third_party/BUILD. Every object
must be position-independent: Debian's gcc links PIE by default, and Bazel's
Linux toolchain compiles cc_library objects with -fPIC, which this relies on.
Sanitizer builds (--config=asan, tsan) skip these targets (tag no_asan,
no_tsan): the OCaml runtime is not instrumented.
"""

# Tags for every OCaml target: sanitizer builds skip them (.bazelrc).
OCAML_TAGS = [
    "no_asan",
    "no_tsan",
]

OcamlLibraryInfo = provider(
    doc = "A compiled OCaml library: its directory's files.",
    fields = {
        "cmxa": "the .cmxa; its directory holds the .cmi and lib*.a",
        "files": "depset of everything a user of the library needs",
    },
)

_WARNINGS = "+a-4-9-40-41-42-44-45-70"

def _cc_link_inputs(deps):
    """(static libraries, link flags) that deps link, deduplicated."""
    libs = []
    flags = []
    for dep in deps:
        for li in dep[CcInfo].linking_context.linker_inputs.to_list():
            for f in li.user_link_flags:
                if f not in flags:
                    flags.append(f)
            for lib in li.libraries:
                a = lib.pic_static_library or lib.static_library
                if a != None and a not in libs:
                    libs.append(a)
    return libs, flags

def _compile_c(ctx, srcs, cc_deps):
    """Compiles C files with OCaml's headers and cc_deps' on the path."""
    hdrs = depset(transitive = [d[CcInfo].compilation_context.headers for d in cc_deps])
    objs = []
    for src in srcs:
        o = ctx.actions.declare_file("_" + ctx.label.name + "_c/" + src.basename[:-2] + ".o")
        ctx.actions.run_shell(
            outputs = [o],
            inputs = depset([src], transitive = [hdrs]),
            command = ('cc -c -O2 -g -fPIC -Wall -Wextra -Werror ' +
                       '-Wno-unused-parameter -I. -I"$(ocamlfind ocamlc -where)" ' +
                       '"$1" -o "$2"'),
            arguments = [src.path, o.path],
            mnemonic = "OcamlStubCc",
            progress_message = "Compiling OCaml stub %s" % src.short_path,
            use_default_shell_env = True,
        )
        objs.append(o)
    return objs

def _ocaml_stub_library_impl(ctx):
    module = ctx.file.mli.basename[:-len(".mli")]
    if ctx.file.ml.basename != module + ".ml":
        fail("ml must be %s.ml" % module)
    cmi, cmx, obj, cmxa, lib, mli = [
        ctx.actions.declare_file(ctx.label.name + "/" + module + ext)
        for ext in [".cmi", ".cmx", ".o", ".cmxa", ".a", ".mli"]
    ]
    stubs_a = ctx.actions.declare_file(
        ctx.label.name + "/lib" + ctx.attr.stubs_name + ".a",
    )
    stub_objs = _compile_c(ctx, ctx.files.stubs, ctx.attr.cc_deps)
    libs, flags = _cc_link_inputs(ctx.attr.cc_deps)

    # One archive: the stubs and every static library below them (GNU ar's
    # MRI script; addlib keeps each archive's members as they are).
    script = ["create " + stubs_a.path]
    script += ["addmod " + o.path for o in stub_objs]
    script += ["addlib " + a.path for a in libs]
    script += ["save", "end"]
    ctx.actions.run_shell(
        outputs = [stubs_a],
        inputs = stub_objs + libs,
        command = 'printf "%s\\n" "$@" | ar -M',
        arguments = script,
        mnemonic = "OcamlStubAr",
        progress_message = "Archiving %s" % stubs_a.short_path,
        use_default_shell_env = True,
    )

    cclib = ["-cclib", "-l" + ctx.attr.stubs_name]
    for f in flags + ["-lstdc++"]:
        cclib += ["-cclib", f]
    ctx.actions.run_shell(
        outputs = [cmi, cmx, obj, cmxa, lib, mli],
        inputs = [ctx.file.mli, ctx.file.ml],
        command = """set -e
cp "$1" "$3/{m}.mli"
cp "$2" "$3/{m}.ml"
cd "$3"
shift 3
ocamlfind ocamlopt -g -bin-annot -w {w} -warn-error +a -c {m}.mli
ocamlfind ocamlopt -g -w {w} -warn-error +a -c {m}.ml
ocamlfind ocamlopt -a -o {m}.cmxa {m}.cmx "$@"
rm -f {m}.ml {m}.cmt {m}.cmti
""".format(m = module, w = _WARNINGS),
        arguments = [ctx.file.mli.path, ctx.file.ml.path, cmi.dirname] + cclib,
        mnemonic = "OcamlOpt",
        progress_message = "Compiling OCaml library %s" % ctx.label,
        use_default_shell_env = True,
    )
    files = depset([cmi, cmx, cmxa, lib, stubs_a, mli])
    return [
        DefaultInfo(files = files, runfiles = ctx.runfiles(transitive_files = files)),
        OcamlLibraryInfo(cmxa = cmxa, files = files),
    ]

ocaml_stub_library = rule(
    implementation = _ocaml_stub_library_impl,
    doc = "An OCaml module with C stubs, merged with its cc deps' archives.",
    attrs = {
        "mli": attr.label(allow_single_file = [".mli"], mandatory = True),
        "ml": attr.label(allow_single_file = [".ml"], mandatory = True),
        "stubs": attr.label_list(allow_files = [".c"]),
        "stubs_name": attr.string(mandatory = True),
        "cc_deps": attr.label_list(providers = [CcInfo]),
    },
)

def _ocaml_binary_impl(ctx):
    exe = ctx.actions.declare_file(ctx.label.name)
    libs = [d[OcamlLibraryInfo] for d in ctx.attr.deps]
    c_objs = _compile_c(ctx, ctx.files.c_srcs, ctx.attr.cc_deps)
    includes = []
    for l in libs:
        includes += ["-I", "$ROOT/" + l.cmxa.dirname, "$ROOT/" + l.cmxa.path]
    packages = ",".join(ctx.attr.packages)
    ctx.actions.run_shell(
        outputs = [exe],
        inputs = depset(ctx.files.srcs + c_objs, transitive = [l.files for l in libs]),
        command = """set -e
ROOT="$PWD"
out="$ROOT/$1"
shift
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
srcs=()
for s in {srcs}; do cp "$ROOT/$s" "$work/"; srcs+=("$(basename "$s")"); done
cd "$work"
ocamlfind ocamlopt -g {unsafe} -w {w} -warn-error +a {pkgs} \
  {c_objs} {includes} "${{srcs[@]}}" -o "$out"
""".format(
            c_objs = " ".join(['"$ROOT/%s"' % o.path for o in c_objs]),
            srcs = " ".join(['"%s"' % s.path for s in ctx.files.srcs]),
            w = _WARNINGS,
            unsafe = "-unsafe -inline 200" if ctx.attr.unsafe else "",
            pkgs = ("-package " + packages + " -linkpkg") if packages else "",
            includes = " ".join(['"%s"' % i if not i.startswith("-") else i for i in includes]),
        ),
        arguments = [exe.path],
        mnemonic = "OcamlLink",
        progress_message = "Linking OCaml executable %s" % ctx.label,
        use_default_shell_env = True,
    )
    return [DefaultInfo(
        files = depset([exe]),
        executable = exe,
        runfiles = ctx.runfiles(files = ctx.files.data),
    )]

ocaml_binary = rule(
    implementation = _ocaml_binary_impl,
    doc = "An OCaml executable from srcs (in link order) and libraries.",
    executable = True,
    attrs = {
        "srcs": attr.label_list(allow_files = [".ml"], mandatory = True),
        "deps": attr.label_list(providers = [OcamlLibraryInfo]),
        "packages": attr.string_list(doc = "findlib packages, e.g. unix"),
        "unsafe": attr.bool(doc = "-unsafe -inline 200 (benchmarks)"),
        "c_srcs": attr.label_list(
            allow_files = [".c"],
            doc = "C stubs of the executable's own (their symbols must be in deps' archives)",
        ),
        "cc_deps": attr.label_list(
            providers = [CcInfo],
            doc = "headers for c_srcs (their code comes from deps)",
        ),
        "data": attr.label_list(allow_files = True),
    },
)
