// Tests of the typecheck demo (examples/typecheck_lib.h) on the fixed tree in
// examples/testdata/.
//
// What they prove:
//   * The scanner's token kinds and definition rules, case by case.
//   * On testdata (12 files; quoted, angle and "../" includes, an include
//     cycle, a missing and a computed include, nested directories), every
//     published array is what the test computes on its own from a
//     hand-written table of each file's direct includes and definitions:
//     the defs and includes arrays element by element, and each closure's
//     members and visible-identifier count from the test's own search over
//     that table.
//   * Forked runs with 1, 2, 3, 4 and 7 workers and the serial run publish
//     identical arrays (equal digests), and the digest after the recheck
//     equals the one before it.
//   * The recheck removes exactly the edited files' three keys and the
//     closures that contain an edited file (the test's own closure table
//     says which), and afterwards the heap holds exactly the 4 keys per
//     file and nothing else: no claim, tally or error keys.
//   * Collect reclaims at least the removed bytes, leaves no dead bytes or
//     tombstones, the live bytes equal those of the first pass, and Verify
//     passes.
//   * Bad options are errors, not crashes.
// Forked workers report through the heap, and the test reads every array
// back; exit codes alone prove nothing here.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "examples/typecheck_lib.h"
#include "examples/typecheck_scan.h"
#include "gtest/gtest.h"
#include "shmheap.h"

namespace typecheck {
namespace {

constexpr char kRoot[] = "examples/testdata";

int64_t H(const std::string& s) {
  return static_cast<int64_t>(XXH3_64bits(s.data(), s.size()));
}

std::string Path(const std::string& relative) {
  return std::string(kRoot) + "/" + relative;
}

// ---------------------------------------------------------------- scanner

std::set<int64_t> DefHashes(const std::vector<std::string>& names) {
  std::set<int64_t> out;
  for (const std::string& n : names) out.insert(H(n));
  return out;
}

std::set<int64_t> DefsOf(const std::string& text) {
  const ScanResult r = Scan(text);
  EXPECT_TRUE(std::is_sorted(r.defs.begin(), r.defs.end()));
  return {r.defs.begin(), r.defs.end()};
}

TEST(ScanTest, DefinitionRules) {
  EXPECT_EQ(DefsOf("#define X \\\n  1\nint f(void);"), DefHashes({"X", "f"}));
  EXPECT_EQ(DefsOf("typedef struct { int a; } name_t;"), DefHashes({"name_t"}));
  EXPECT_EQ(DefsOf("typedef unsigned long size_type;"),
            DefHashes({"size_type"}));
  // A function-pointer typedef's name is inside parentheses: by the rules,
  // nothing is defined.
  EXPECT_EQ(DefsOf("typedef int (*fp)(int);"), DefHashes({}));
  EXPECT_EQ(DefsOf("extern \"C\" { int f(void); }"), DefHashes({"f"}));
  EXPECT_EQ(DefsOf("namespace a::b { int g(); inline namespace v { int h(); "
                   "} }"),
            DefHashes({"g", "h"}));
  EXPECT_EQ(DefsOf("struct S { void m(); int n(int x); };"), DefHashes({"S"}));
  EXPECT_EQ(DefsOf("struct fwd; enum class E : int { kA }; union U {};"),
            DefHashes({"fwd", "E", "U"}));
  EXPECT_EQ(DefsOf("template <class T> class Box { T t; };"),
            DefHashes({"Box"}));
  EXPECT_EQ(DefsOf("using Alias = int; using std::vector;"),
            DefHashes({"Alias"}));
  EXPECT_EQ(DefsOf("int f(int (*cb)(int)) { return g(1); }"), DefHashes({"f"}));
  EXPECT_EQ(DefsOf("extern int x __attribute__ ((unused));"), DefHashes({}));
  // A `#` that does not start a line is a punctuator, not a directive.
  EXPECT_EQ(DefsOf("int x; #define a 1\n"), DefHashes({}));
  EXPECT_EQ(DefsOf("int a(); int a(int);\n#define a 1\n"), DefHashes({"a"}));
}

TEST(ScanTest, TokenKinds) {
  const ScanResult r = Scan(
      "/* c */ // d\n"
      "#include <a.h>\n"
      "  #  include \"b.h\"  // spaces around the directive name\n"
      "#include MACRO\n"
      "#include_next <c.h>\n"
      "const char* s = R\"re(#include \"x\")re\"; char c = L'x';\n"
      "auto u = u8\"s\"; int n = 1'000'000 + 0x1p-3 + 1.5e+10f;\n"
      "a::b->c @\n");
  ASSERT_EQ(r.includes.size(), 4u);
  EXPECT_EQ(r.includes[0].name, "a.h");
  EXPECT_TRUE(r.includes[0].angled);
  EXPECT_EQ(r.includes[1].name, "b.h");
  EXPECT_FALSE(r.includes[1].angled);
  EXPECT_TRUE(r.includes[2].computed);
  EXPECT_TRUE(r.includes[3].next);
  EXPECT_EQ(r.histogram[kComment], 3);
  EXPECT_EQ(r.histogram[kDirective], 4);
  // Header names, the raw string and u8"s".
  EXPECT_EQ(r.histogram[kString], 5);
  EXPECT_EQ(r.histogram[kChar], 1);
  EXPECT_EQ(r.histogram[kNumber], 3);
  // const char auto int
  EXPECT_EQ(r.histogram[kKeyword], 5);
  // MACRO s c u n a b c
  EXPECT_EQ(r.histogram[kIdentifier], 8);
  // * = ; = ; = ; = + + ; :: ->
  EXPECT_EQ(r.histogram[kPunctuator], 13);
  EXPECT_EQ(r.histogram[kOther], 1);
}

TEST(ScanTest, CommentsHideDirectives) {
  const ScanResult r =
      Scan("/*\n#include <x.h>\n*/\n\"#include <y.h>\"\n#define Z 1\n");
  EXPECT_TRUE(r.includes.empty());
  EXPECT_EQ(r.defs, std::vector<int64_t>{H("Z")});
}

TEST(NormalizePathTest, Lexical) {
  EXPECT_EQ(NormalizePath("a/./b//c/../d"), "a/b/d");
  EXPECT_EQ(NormalizePath("/usr/include/../include/x.h"), "/usr/include/x.h");
  EXPECT_EQ(NormalizePath("../a"), "../a");
  EXPECT_EQ(NormalizePath("/.."), "/");
  EXPECT_EQ(NormalizePath("a/.."), ".");
}

// -------------------------------------------------------------- the tree

// The test's own model of examples/testdata: direct includes (resolved, in
// order of first appearance) and definitions of every file.
struct FileModel {
  std::vector<std::string> includes;
  std::vector<std::string> defs;
};

const std::map<std::string, FileModel>& Model() {
  static const auto* const kModel = new std::map<std::string, FileModel>{
      {"app/local.h", {{"base/config.h"}, {"Handle", "Mode", "run_app"}}},
      {"app/main.cc", {{"util/io.h", "app/local.h"}, {"main"}}},
      {"app/nested/deep/leaf.h",
       {{"app/local.h", "util/cycle_b.h"},
        {"APP_NESTED_DEEP_LEAF_H", "LEAF_LEVEL"}}},
      {"base/config.h", {{}, {"CONFIG_DEBUG", "CONFIG_NAME"}}},
      {"base/list.h",
       {{"base/types.h", "base/macros.h"},
        {"BASE_LIST_H", "list", "list_push", "list_size"}}},
      {"base/macros.h", {{"base/types.h"}, {"BASE_MACROS_H", "MAX", "MIN"}}},
      {"base/types.h", {{}, {"BASE_TYPES_H", "size_type", "point"}}},
      {"standalone.h", {{}, {"STANDALONE_H", "Box", "Pattern"}}},
      {"util/cycle_a.h", {{"util/cycle_b.h"}, {"UTIL_CYCLE_A_H", "cycle_a"}}},
      {"util/cycle_b.h",
       {{"util/cycle_a.h", "base/types.h"}, {"UTIL_CYCLE_B_H", "cycle_b"}}},
      {"util/io.h",
       {{"util/strings.h", "util/cycle_a.h"},
        {"UTIL_IO_H", "write_all", "Reader", "io_flush"}}},
      {"util/strings.h",
       {{"base/list.h"},
        {"UTIL_STRINGS_H", "STRINGS_IMPL", "str_len", "str_dup"}}},
  };
  return *kModel;
}

// The reflexive-transitive closure of `file` in the model.
std::set<std::string> ModelClosure(const std::string& file) {
  std::set<std::string> seen = {file};
  std::vector<std::string> stack = {file};
  while (!stack.empty()) {
    const std::string f = stack.back();
    stack.pop_back();
    for (const std::string& inc : Model().at(f).includes) {
      if (seen.insert(inc).second) stack.push_back(inc);
    }
  }
  return seen;
}

Options TreeOptions() {
  Options o;
  o.roots = {kRoot};
  o.workers = 4;
  o.keep_heap = true;
  return o;
}

absl::StatusOr<Result> Analyse(const Options& o) { return RunAnalysis(o); }

TEST(TypecheckTest, ListsTheTree) {
  absl::StatusOr<Result> r = Analyse(TreeOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<std::string> expected;
  for (const auto& [file, model] : Model()) expected.push_back(Path(file));
  EXPECT_EQ(r->files, expected);
  EXPECT_EQ(r->tallies[kIncludesResolved],
            15);  // io.h includes strings.h twice
  EXPECT_EQ(r->tallies[kIncludesUnresolved], 2);  // missing/nowhere.h, MACRO
}

// Every array of every file, against the model, for a forked and a serial
// run.
TEST(TypecheckTest, PublishedArraysMatchTheModel) {
  for (const bool serial : {false, true}) {
    SCOPED_TRACE(serial ? "serial" : "4 workers");
    Options o = TreeOptions();
    o.serial = serial;
    o.check = false;
    absl::StatusOr<Result> r = Analyse(o);
    ASSERT_TRUE(r.ok()) << r.status();
    const shmheap::Heap& heap = *r->heap;
    for (const auto& [file, model] : Model()) {
      SCOPED_TRACE(file);
      const std::string path = Path(file);

      absl::StatusOr<shmheap::ArrayView<int32_t>> tokens =
          heap.Get<int32_t>(TokensKey(path));
      ASSERT_TRUE(tokens.ok()) << tokens.status();
      ASSERT_EQ(tokens->ndims(), 1);
      ASSERT_EQ(tokens->dim(0), kNumTokenKinds);

      absl::StatusOr<shmheap::ArrayView<int64_t>> defs =
          heap.Get<int64_t>(DefsKey(path));
      ASSERT_TRUE(defs.ok()) << defs.status();
      std::vector<int64_t> want_defs;
      for (const std::string& d : model.defs) want_defs.push_back(H(d));
      std::sort(want_defs.begin(), want_defs.end());
      EXPECT_EQ(std::vector<int64_t>(defs->flat().begin(), defs->flat().end()),
                want_defs);

      absl::StatusOr<shmheap::ArrayView<int64_t>> includes =
          heap.Get<int64_t>(IncludesKey(path));
      ASSERT_TRUE(includes.ok()) << includes.status();
      std::vector<int64_t> want_includes;
      for (const std::string& i : model.includes) {
        want_includes.push_back(H(Path(i)));
      }
      EXPECT_EQ(std::vector<int64_t>(includes->flat().begin(),
                                     includes->flat().end()),
                want_includes);

      absl::StatusOr<shmheap::ArrayView<int64_t>> closure =
          heap.Get<int64_t>(ClosureKey(path));
      ASSERT_TRUE(closure.ok()) << closure.status();
      std::set<int64_t> visible;
      std::vector<int64_t> members;
      for (const std::string& m : ModelClosure(file)) {
        members.push_back(H(Path(m)));
        for (const std::string& d : Model().at(m).defs) visible.insert(H(d));
      }
      std::sort(members.begin(), members.end());
      ASSERT_EQ(closure->size(), static_cast<int64_t>(members.size()) + 1);
      EXPECT_EQ(closure->flat()[0], static_cast<int64_t>(visible.size()));
      EXPECT_EQ(std::vector<int64_t>(closure->flat().begin() + 1,
                                     closure->flat().end()),
                members);
    }
  }
}

// base/config.h, token by token (see the file).
TEST(TypecheckTest, TokenHistogramOfOneFile) {
  Options o = TreeOptions();
  o.serial = true;
  o.check = false;
  absl::StatusOr<Result> r = Analyse(o);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<shmheap::ArrayView<int32_t>> t =
      r->heap->Get<int32_t>(TokensKey(Path("base/config.h")));
  ASSERT_TRUE(t.ok()) << t.status();
  std::vector<int32_t> want(kNumTokenKinds, 0);
  want[kComment] = 1;     // /* Configuration ... */
  want[kDirective] = 3;   // #pragma #define #define
  want[kIdentifier] = 3;  // once CONFIG_DEBUG CONFIG_NAME
  want[kNumber] = 1;      // 1
  want[kString] = 1;      // "demo"
  EXPECT_EQ(std::vector<int32_t>(t->flat().begin(), t->flat().end()), want);
}

TEST(TypecheckTest, ParallelAndSerialDigestsAreEqual) {
  Options o = TreeOptions();
  o.serial = true;
  o.keep_heap = false;
  absl::StatusOr<Result> serial = Analyse(o);
  ASSERT_TRUE(serial.ok()) << serial.status();
  EXPECT_EQ(serial->digest, serial->digest_recheck);
  EXPECT_FALSE(serial->digest_serial.has_value());
  for (const int workers : {1, 2, 3, 4, 7}) {
    SCOPED_TRACE(workers);
    o.serial = false;
    o.workers = workers;
    o.check = workers == 4;  // one run also does the built-in check phase
    absl::StatusOr<Result> r = Analyse(o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->digest, serial->digest);
    EXPECT_EQ(r->digest_recheck, serial->digest);
    EXPECT_TRUE(r->digests_match());
    if (o.check) {
      ASSERT_TRUE(r->digest_serial.has_value());
      EXPECT_EQ(*r->digest_serial, serial->digest);
    }
    EXPECT_TRUE(r->verify.ok()) << r->verify;
  }
}

// The keys the recheck must remove when `edited` change, from the model.
std::vector<std::string> ExpectedRemoved(
    const std::vector<std::string>& edited_paths) {
  std::vector<std::string> keys;
  std::set<std::string> edited;
  for (const std::string& p : edited_paths) {
    const std::string rel = p.substr(std::string(kRoot).size() + 1);
    edited.insert(rel);
    keys.push_back(TokensKey(p));
    keys.push_back(DefsKey(p));
    keys.push_back(IncludesKey(p));
  }
  for (const auto& [file, model] : Model()) {
    const std::set<std::string> closure = ModelClosure(file);
    if (std::any_of(edited.begin(), edited.end(), [&](const std::string& e) {
          return closure.count(e) != 0;
        })) {
      keys.push_back(ClosureKey(Path(file)));
    }
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

void ExpectExactlyTheResultKeys(const Result& r) {
  const shmheap::Heap& heap = *r.heap;
  for (const std::string& path : r.files) {
    EXPECT_TRUE(heap.Contains(TokensKey(path))) << path;
    EXPECT_TRUE(heap.Contains(DefsKey(path))) << path;
    EXPECT_TRUE(heap.Contains(IncludesKey(path))) << path;
    EXPECT_TRUE(heap.Contains(ClosureKey(path))) << path;
  }
  // 4 keys per file are present; a count of exactly 4 per file leaves no
  // room for any other key.
  EXPECT_EQ(heap.stats().live_blobs, 4 * r.files.size());
  for (const char* phase : {"parse", "resolve", "reparse", "reresolve"}) {
    EXPECT_FALSE(heap.Contains(std::string("next:") + phase));
    EXPECT_FALSE(heap.Contains(std::string("tally:") + phase + ":0"));
  }
}

// The dependency table holds exactly the model's reverse include edges
// (each once, although io.h includes strings.h twice and the reparse adds
// them again), and the recheck's dependents, found in it, are exactly the
// files whose published closure names an edited file.
TEST(TypecheckTest, DependencyTableHoldsTheReverseIncludes) {
  for (bool serial : {false, true}) {
    SCOPED_TRACE(serial ? "serial" : "forked");
    Options o = TreeOptions();
    o.serial = serial;
    o.change = 0.5;
    absl::StatusOr<Result> r = Analyse(o);
    ASSERT_TRUE(r.ok()) << r.status();
    const shmheap::Heap& heap = *r->heap;
    std::map<std::string, std::set<std::string>> includers;
    size_t edges = 0;
    for (const auto& [file, model] : Model()) {
      for (const std::string& inc : model.includes) {
        edges += includers[inc].insert(file).second;
      }
    }
    EXPECT_EQ(edges, 14u);
    EXPECT_EQ(r->tallies[kDepsAdded], 14);
    EXPECT_EQ(r->published.dep_used, 14u);
    for (size_t i = 0; i < r->files.size(); ++i) {
      absl::StatusOr<std::vector<uint32_t>> deps =
          heap.GetDeps(static_cast<uint32_t>(i));
      ASSERT_TRUE(deps.ok()) << deps.status();
      std::vector<std::string> got;
      for (uint32_t d : *deps) got.push_back(r->files[d]);
      std::sort(got.begin(), got.end());
      std::vector<std::string> want;
      const std::string rel = r->files[i].substr(std::string(kRoot).size() + 1);
      for (const std::string& f : includers[rel]) want.push_back(Path(f));
      EXPECT_EQ(got, want) << r->files[i];
    }
    // Independently: the closures the resolve published.
    std::set<int64_t> edited_hashes;
    for (const std::string& e : r->edited) edited_hashes.insert(StableHash(e));
    std::vector<std::string> from_closures;
    for (const std::string& f : r->files) {
      absl::StatusOr<shmheap::ArrayView<int64_t>> c =
          heap.Get<int64_t>(ClosureKey(f));
      ASSERT_TRUE(c.ok()) << c.status();
      for (int64_t m : c->flat().subspan(1)) {
        if (edited_hashes.count(m)) {
          from_closures.push_back(f);
          break;
        }
      }
    }
    EXPECT_FALSE(r->edited.empty());
    EXPECT_EQ(r->dependents, from_closures);
    EXPECT_TRUE(r->digests_match());
  }
}

TEST(TypecheckTest, RecheckOfAWidelyIncludedFile) {
  Options o = TreeOptions();
  o.edited = {Path("base/types.h")};
  absl::StatusOr<Result> r = Analyse(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->edited, o.edited);
  const std::vector<std::string> want = ExpectedRemoved(o.edited);
  // Spelled out too: every closure but those of config, local and
  // standalone contains base/types.h.
  EXPECT_EQ(want.size(), 3u + 9u);
  EXPECT_EQ(r->removed_keys, want);
  EXPECT_EQ(r->phases[3].name, "reparse");
  EXPECT_EQ(r->phases[3].files, 1);
  EXPECT_EQ(r->phases[4].name, "reresolve");
  EXPECT_EQ(r->phases[4].files, 9);
  EXPECT_TRUE(r->digests_match());
  ExpectExactlyTheResultKeys(*r);
}

TEST(TypecheckTest, RecheckOfALeafAndOfASeededFraction) {
  Options o = TreeOptions();
  o.edited = {Path("base/config.h"), Path("standalone.h")};
  absl::StatusOr<Result> r = Analyse(o);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<std::string> want = {
      ClosureKey(Path("app/local.h")),
      ClosureKey(Path("app/main.cc")),
      ClosureKey(Path("app/nested/deep/leaf.h")),
      ClosureKey(Path("base/config.h")),
      ClosureKey(Path("standalone.h")),
      DefsKey(Path("base/config.h")),
      DefsKey(Path("standalone.h")),
      IncludesKey(Path("base/config.h")),
      IncludesKey(Path("standalone.h")),
      TokensKey(Path("base/config.h")),
      TokensKey(Path("standalone.h")),
  };
  std::sort(want.begin(), want.end());
  EXPECT_EQ(r->removed_keys, want);
  EXPECT_EQ(ExpectedRemoved(o.edited), want);
  EXPECT_TRUE(r->digests_match());
  ExpectExactlyTheResultKeys(*r);

  for (const double change : {0.1, 0.25, 1.0}) {
    SCOPED_TRACE(change);
    o.edited.clear();
    o.change = change;
    o.check = false;
    absl::StatusOr<Result> f = Analyse(o);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->edited.size(), static_cast<size_t>(std::llround(change * 12)));
    EXPECT_EQ(f->removed_keys, ExpectedRemoved(f->edited));
    EXPECT_TRUE(f->digests_match());
    ExpectExactlyTheResultKeys(*f);
  }
}

TEST(TypecheckTest, CollectReclaimsTheRemovedBytes) {
  Options o = TreeOptions();
  o.edited = {Path("base/types.h")};
  absl::StatusOr<Result> r = Analyse(o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->gc.ran);
  EXPECT_GT(r->removed_bytes, 0u);
  // Removed results, plus the claims, tallies, lost claim races and chunk
  // tails of five phases of forked workers.
  EXPECT_GE(r->dead_bytes_before_collect, r->removed_bytes);
  EXPECT_GE(r->gc.bytes_before - r->gc.bytes_after, r->removed_bytes);
  EXPECT_EQ(r->final_stats.dead_bytes, 0u);
  EXPECT_EQ(r->final_stats.table_tombstones, 0u);
  EXPECT_EQ(r->final_stats.heap_top, r->gc.bytes_after);
  // The recomputed arrays are the same arrays: as many live bytes as after
  // the first pass (whose claims had been removed, but not collected).
  EXPECT_EQ(r->final_stats.live_bytes, r->published.live_bytes);
  EXPECT_EQ(r->final_stats.live_blobs, r->published.live_blobs);
  EXPECT_TRUE(r->verify.ok()) << r->verify;
  EXPECT_TRUE(r->heap->Verify().ok());
}

// A worker that fails reports its message through the heap; one killed by
// a signal is named with the signal. Either way the run is an error, in the
// phase where it happened.
TEST(TypecheckTest, WorkerFailuresAreReported) {
  Options o = TreeOptions();
  o.testing_worker_hook = [](std::string_view phase, int worker) {
    if (phase == "resolve" && worker == 2) {
      return absl::DataLossError("injected failure");
    }
    return absl::OkStatus();
  };
  absl::StatusOr<Result> r = Analyse(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r.status().message(), "resolve: worker 2 failed: injected failure");

  o.testing_worker_hook = [](std::string_view phase, int worker) {
    if (phase == "reparse" && worker == 1) raise(SIGKILL);
    return absl::OkStatus();
  };
  r = Analyse(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r.status().message(),
            "reparse: worker 1 failed: killed by signal 9");

  o.serial = true;
  o.testing_worker_hook = [](std::string_view phase, int worker) {
    return phase == "parse" ? absl::UnavailableError("no disk")
                            : absl::OkStatus();
  };
  EXPECT_EQ(Analyse(o).status().code(), absl::StatusCode::kUnavailable);
}

// Each worker's share of a phase is what the counter handed it; together
// exactly the work list.
TEST(TypecheckTest, CounterSplitsTheWork) {
  Options o = TreeOptions();
  o.workers = 3;
  o.check = false;
  absl::StatusOr<Result> r = Analyse(o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const PhaseReport& p : r->phases) {
    if (p.tallies.empty()) continue;  // the master's own phases
    SCOPED_TRACE(p.name);
    ASSERT_EQ(p.files_per_worker.size(), 3u);
    int64_t total = 0;
    for (int64_t f : p.files_per_worker) total += f;
    EXPECT_EQ(total, p.files);
  }
}

// Ctrl-C: every worker raises SIGINT as the resolve starts, so the stop
// flag is set before any of them takes a file. The handler (installed by
// HandleStopSignals, inherited by the forked workers) sets the heap's stop
// flag; each worker sees it before its first file and exits; the master
// skips the rest. Forked and serial.
TEST(TypecheckTest, SigintStopsTheRunAfterTheCurrentFile) {
  HandleStopSignals();
  for (bool serial : {false, true}) {
    SCOPED_TRACE(serial ? "serial" : "forked");
    Options o = TreeOptions();
    o.serial = serial;
    o.testing_worker_hook = [](std::string_view phase, int) {
      if (phase == "resolve") raise(SIGINT);
      return absl::OkStatus();
    };
    absl::StatusOr<Result> r = Analyse(o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->stopped);
    EXPECT_EQ(r->stopped_in, "resolve");
    ASSERT_EQ(r->phases.size(), 2u);
    EXPECT_FALSE(r->phases[0].stopped);
    EXPECT_EQ(r->phases[0].done, 12);
    EXPECT_TRUE(r->phases[1].stopped);
    EXPECT_EQ(r->phases[1].done, 0);
    EXPECT_EQ(r->tallies[kClosureFiles], 0);
    ASSERT_TRUE(r->heap.has_value());
    EXPECT_TRUE(r->heap->StopRequested());
    // Nothing of the resolve was published: no closure, and no counter or
    // tally left behind; the parse's results are all there.
    for (const std::string& f : r->files) {
      EXPECT_FALSE(r->heap->Contains(ClosureKey(f))) << f;
      EXPECT_TRUE(r->heap->Contains(IncludesKey(f))) << f;
    }
    EXPECT_EQ(r->heap->stats().live_blobs, 3u * 12u);
  }
  // The stop was consumed: the next run goes to the end.
  absl::StatusOr<Result> r = Analyse(TreeOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->stopped);
  EXPECT_TRUE(r->digests_match());
}

// A signal that comes before the heap exists is remembered: the run stops
// before its first file.
TEST(TypecheckTest, SigintBeforeTheRunStopsItAtOnce) {
  HandleStopSignals();
  raise(SIGINT);
  absl::StatusOr<Result> r = Analyse(TreeOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->stopped_in, "parse");
  ASSERT_EQ(r->phases.size(), 1u);
  EXPECT_EQ(r->phases[0].done, 0);
  EXPECT_EQ(r->heap->stats().live_blobs, 0u);
}

// An unreadable file is analysed as empty and counted, an unlistable
// directory is skipped and counted, and the run goes on. Root reads
// everything, so as root the analysis runs in a child that has become
// nobody (uid 65534); the tree is in /dev/shm, which any user may enter.
TEST(TypecheckTest, UnreadableFilesAndDirectoriesAreSkippedAndCounted) {
  namespace fs = std::filesystem;
  const std::string tree =
      "/dev/shm/typecheck_test_unreadable_" + std::to_string(getpid());
  fs::remove_all(tree);
  fs::create_directories(tree + "/open");
  fs::create_directories(tree + "/locked");
  auto put = [](const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  };
  put(tree + "/open/a.h", "#include \"b.h\"\n#include \"c.h\"\nint a;\n");
  put(tree + "/open/b.h", "int b;\n");
  put(tree + "/open/c.h", "int c;\n");
  put(tree + "/locked/d.h", "int d;\n");
  chmod(tree.c_str(), 0755);
  chmod((tree + "/open").c_str(), 0755);
  for (const char* f : {"/open/a.h", "/open/c.h"}) {
    chmod((tree + f).c_str(), 0644);
  }
  chmod((tree + "/open/b.h").c_str(), 0);
  chmod((tree + "/locked").c_str(), 0);

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    if (geteuid() == 0 && (setresgid(65534, 65534, 65534) != 0 ||
                           setresuid(65534, 65534, 65534) != 0)) {
      _exit(3);
    }
    Options o;
    o.roots = {tree};
    o.workers = 2;
    absl::StatusOr<Result> r = RunAnalysis(o);
    std::string out;
    if (!r.ok()) {
      out = "error " + std::string(r.status().message());
    } else {
      out = std::to_string(r->files.size()) + " " +
            std::to_string(r->tallies[kFilesUnreadable]) + " " +
            std::to_string(r->unlisted_dirs) + " " +
            std::to_string(r->tallies[kIncludesResolved]) + " " +
            (r->digests_match() && r->verify.ok() ? "ok" : "bad") + "\n" +
            r->phases[0].first_unreadable + "\n" + r->first_unlisted;
    }
    if (::write(fds[1], out.data(), out.size()) < 0) _exit(4);
    _exit(0);
  }
  close(fds[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, n);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  chmod((tree + "/locked").c_str(), 0755);
  fs::remove_all(tree);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
    GTEST_SKIP() << "cannot switch to uid 65534 here (a sandbox?)";
  }
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // Three files listed (d.h is behind the locked directory), one of them
  // unreadable, one directory skipped; a.h's two includes both resolve
  // (b.h is analysed, as an empty file); the digests agree and Verify
  // passes.
  EXPECT_EQ(got, "3 1 1 2 ok\ncannot open " + tree +
                     "/open/b.h: Permission denied\n" + tree +
                     "/locked: Permission denied");
}

TEST(TypecheckTest, BadOptions) {
  Options o = TreeOptions();
  o.workers = 0;
  EXPECT_EQ(Analyse(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = TreeOptions();
  o.change = 2;
  EXPECT_EQ(Analyse(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = TreeOptions();
  o.roots = {"examples/testdata/no/such/dir"};
  EXPECT_EQ(Analyse(o).status().code(), absl::StatusCode::kNotFound);
  o = TreeOptions();
  o.roots = {"examples/testdata/base/types.h"};
  EXPECT_EQ(Analyse(o).status().code(), absl::StatusCode::kNotFound);
  o = TreeOptions();
  o.edited = {"examples/testdata/not_there.h"};
  EXPECT_EQ(Analyse(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = TreeOptions();
  o.roots.clear();
  EXPECT_EQ(Analyse(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace typecheck
