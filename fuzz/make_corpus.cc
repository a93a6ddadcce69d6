// Writes the seed corpora of the fuzz targets from real heaps:
//
//   bazel run //fuzz:make_corpus -- "$PWD/fuzz/corpus"
//
// open_verify_fuzzer/: heap files made through the public API with tiny
// options (64 KiB heap, 16 to 32 slots, 4 KiB chunks), in the sparse input
// form of fuzz/heap_image.h (one raw file too): empty; every kind, rank and
// layout; churn (removes, replaces, moves: tombstones and dead blobs), with
// and without a collection after it; no stored keys; a cache-line aligned
// large payload; a writer killed with an open chunk, with and without a free
// registry entry left; a table full to the last slot, its cluster wrapping
// around; a dependency table with live and removed edges (raw form); and
// collector states (died before or while compacting, an odd
// epoch with no collector). Mutations of these reach deep states: the
// header validates, the walk parses, Verify gets to the counters.
//
// blob_view_fuzzer/: inputs for each of its parts (see blob_view_fuzzer.cc),
// the walk ones cut from the same real heaps.
//
// Output is deterministic: fixed seeds, creation times and pids zeroed, and
// a killed writer's pid replaced by one above any pid_max, so it reads as
// dead on every machine. Existing files of other names (regression inputs
// saved from crashes) are left alone.

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fuzz/byte_reader.h"
#include "fuzz/heap_image.h"
#include "heap/blob.h"
#include "heap/layout.h"
#include "heap/testing_hooks.h"
#include "shmheap.h"

namespace shmheap::fuzz {
namespace {

using internal::Header;
using internal::SessionEntry;

// Above Linux's largest pid_max (2^22): never a live process.
constexpr uint64_t kDeadPid = 0x7ffffff0;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "make_corpus: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T Ok(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(absl::StrCat(what, ": ", v.status().ToString()));
  return *std::move(v);
}
void Ok(const absl::Status& s, const char* what) {
  if (!s.ok()) Die(absl::StrCat(what, ": ", s.ToString()));
}

Options TinyOptions() {
  Options o;
  o.heap_bytes = 64 << 10;
  o.table_slots_log2 = 5;
  o.max_table_slots_log2 = 6;  // room for one growth, small files
  o.max_sessions = 2;
  o.chunk_bytes = 4096;
  o.min_available_bytes = 0;
  o.seed = 0x5eed;
  // No dependency table: the sparse input form (fuzz/heap_image.h) carries
  // none, and the default one (1 MiB) would not fit kMaxImageBytes. The
  // "deps_raw" seed has a small one.
  o.dep_table_slots_log2 = 0;
  return o;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) Die("cannot write " + path);
}

template <class T>
void Put(std::string& file, size_t offset, T v) {
  std::memcpy(file.data() + offset, &v, sizeof v);
}
template <class T>
T Get(const std::string& file, size_t offset) {
  T v;
  std::memcpy(&v, file.data() + offset, sizeof v);
  return v;
}

// Zeroes what differs from run to run: the creation time, the creator's pid,
// the start times of sessions; a dead owner becomes kDeadPid.
void Normalize(std::string& file) {
  Put<uint64_t>(file, offsetof(Header, created_unix_ns), 0);
  Put<int32_t>(file, offsetof(Header, owner_pid), 0);
  const uint64_t registry =
      Get<uint64_t>(file, offsetof(Header, registry_offset));
  const uint32_t sessions = Get<uint32_t>(file, offsetof(Header, max_sessions));
  for (uint32_t i = 0; i < sessions; ++i) {
    const size_t e = registry + i * sizeof(SessionEntry);
    const uint64_t owner =
        Get<uint64_t>(file, e + offsetof(SessionEntry, owner_pid));
    if (owner != 0) {
      Put<uint64_t>(file, e + offsetof(SessionEntry, owner_pid), kDeadPid);
    }
    Put<uint64_t>(file, e + offsetof(SessionEntry, owner_start_time), 0);
  }
}

void Churn(shmheap::Heap& heap);

class Maker {
 public:
  Maker(std::string out, std::string scratch)
      : out_(std::move(out)), scratch_(std::move(scratch)) {}

  // A heap file built by `build` (in this process), normalized.
  std::string Heap(const std::string& name, const Options& options,
                   const std::function<void(shmheap::Heap&)>& build) {
    const std::string path = scratch_ + "/" + name;
    {
      shmheap::Heap heap =
          Ok(shmheap::Heap::CreateFile(path, options), "create");
      build(heap);
      Ok(heap.Verify(), "verify");
    }
    std::string file = ReadFile(path);
    std::filesystem::remove(path);
    Normalize(file);
    return file;
  }

  // A heap file whose last writer was killed with its chunk open: a child
  // opens the file, publishes, and exits without leaving its session.
  std::string KilledWriter(const std::string& name, const Options& options) {
    const std::string path = scratch_ + "/" + name;
    { Ok(shmheap::Heap::CreateFile(path, options), "create"); }
    const pid_t pid = fork();
    if (pid == 0) {
      absl::StatusOr<shmheap::Heap> heap = shmheap::Heap::OpenFile(path);
      if (!heap.ok()) _exit(1);
      for (int i = 0; i < 3; ++i) {
        const int32_t v[4] = {i, i + 1, i + 2, i + 3};
        const int64_t dims[] = {2, 2};
        if (!heap->Add<int32_t>(absl::StrCat("killed:", i), v, dims).ok()) {
          _exit(1);
        }
      }
      _exit(0);  // no destructors: the session stays, its chunk open
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("killed writer");
    std::string file = ReadFile(path);
    std::filesystem::remove(path);
    Normalize(file);
    return file;
  }

  // A heap file whose collector was killed inside a collection, at the
  // `nth` time it reached `point` (the recovery target of the fuzzer): a
  // churned heap, and a child that collects with a testing hook that
  // SIGKILLs it there. gc_lock is set to kDeadPid afterwards, so the seed
  // names a dead collector on any machine.
  std::string KilledCollector(
      const std::string& name, const Options& options,
      internal::TestingPoint point, int nth,
      const std::function<void(shmheap::Heap&)>& build = Churn) {
    const std::string path = scratch_ + "/" + name;
    {
      absl::StatusOr<shmheap::Heap> heap =
          shmheap::Heap::CreateFile(path, options);
      Ok(heap.status(), "create");
      build(*heap);
    }
    static internal::TestingPoint g_point;
    static int g_left;
    g_point = point;
    g_left = nth;
    const pid_t pid = fork();
    if (pid == 0) {
      absl::StatusOr<shmheap::Heap> heap = shmheap::Heap::OpenFile(path);
      if (!heap.ok()) _exit(1);
      internal::SetTestingHook([](internal::TestingPoint p) {
        if (p == g_point && --g_left == 0) raise(SIGKILL);
      });
      (void)heap->Collect();
      _exit(2);  // the point was never reached
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status)) Die(name + ": the collector was not killed");
    std::string file = ReadFile(path);
    std::filesystem::remove(path);
    Put<uint32_t>(file, offsetof(Header, gc_lock), kDeadPid);
    Normalize(file);
    return file;
  }

  void Seed(const std::string& target, const std::string& name,
            const std::string& bytes) {
    const std::string dir = out_ + "/" + target;
    std::filesystem::create_directories(dir);
    WriteFile(dir + "/" + name, bytes);
    std::printf("%s/%s: %zu bytes\n", target.c_str(), name.c_str(),
                bytes.size());
  }

  // The sparse form, checked to decode back to the file.
  void HeapSeed(const std::string& name, const std::string& file) {
    const std::string sparse = EncodeSparse(file);
    const std::string decoded = DecodeImage(
        {reinterpret_cast<const uint8_t*>(sparse.data()), sparse.size()});
    if (decoded != file) Die(name + ": the sparse form does not round-trip");
    Seed("open_verify_fuzzer", name, sparse);
  }

 private:
  std::string out_;
  std::string scratch_;
};

template <class T>
void AddArray(shmheap::Heap& heap, const std::string& key,
              std::vector<int64_t> dims, Layout layout, int salt) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<T> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<T>(i * 3 + salt + 1);
  Ok(heap.Add<T>(key, v, dims, layout), "add");
}

void EveryKind(shmheap::Heap& heap) {
  std::vector<int64_t> sixteen(16, 1);
  sixteen[3] = 2;
  AddArray<float>(heap, "f32", {5}, Layout::kC, 1);
  AddArray<double>(heap, "f64", {2, 3}, Layout::kFortran, 2);
  AddArray<int8_t>(heap, "i8", {}, Layout::kC, 3);
  AddArray<uint8_t>(heap, "u8", {3, 0}, Layout::kC, 4);
  AddArray<int16_t>(heap, "i16", {2, 2, 2}, Layout::kC, 5);
  AddArray<uint16_t>(heap, "u16", {4}, Layout::kFortran, 6);
  AddArray<int32_t>(heap, "i32", sixteen, Layout::kC, 7);
  AddArray<int64_t>(heap, "i64", {3}, Layout::kC, 8);
  const int64_t two[] = {2};
  const int64_t ints[] = {-1, 1};
  Ok(heap.AddRaw("int", Kind::kInt, two, Layout::kC,
                 std::as_bytes(std::span(ints))),
     "add");
  Ok(heap.AddRaw("nativeint", Kind::kNativeint, two, Layout::kFortran,
                 std::as_bytes(std::span(ints))),
     "add");
  const std::complex<float> c32[] = {{1, 2}, {3, 4}};
  Ok(heap.Add<std::complex<float>>("c32", c32, two), "add");
  const std::complex<double> c64[] = {{5, 6}, {7, 8}};
  Ok(heap.Add<std::complex<double>>("c64", c64, two, Layout::kFortran), "add");
  const std::string text = "shmheap";
  const int64_t len[] = {int64_t(text.size())};
  Ok(heap.Add<char>("text", std::span(text.data(), text.size()), len), "add");
}

void Churn(shmheap::Heap& heap) {
  for (int i = 0; i < 12; ++i) {
    AddArray<float>(heap, absl::StrCat("k", i), {1 + i % 5}, Layout::kC, i);
  }
  for (int i = 0; i < 12; i += 3)
    Ok(heap.Remove(absl::StrCat("k", i)), "remove");
  for (int i = 1; i < 12; i += 4) {
    const double v[] = {1.5, 2.5};
    const int64_t dims[] = {2};
    Ok(heap.Replace<double>(absl::StrCat("k", i), v, dims).status(), "replace");
  }
  Ok(heap.Move("k2", "moved:k2"), "move");
  Ok(heap.Move("k5", "moved:k5"), "move");
}

void SetCollectorState(std::string& file, uint32_t gc_lock, uint32_t epoch,
                       uint32_t phase) {
  Put<uint32_t>(file, offsetof(Header, gc_lock), gc_lock);
  Put<uint32_t>(file, offsetof(Header, gc_epoch), epoch);
  Put<uint32_t>(file, offsetof(Header, phase), phase);
}

void HeapSeeds(Maker& m) {
  const Options tiny = TinyOptions();
  m.HeapSeed("empty", m.Heap("empty", tiny, [](shmheap::Heap&) {}));
  const std::string kinds = m.Heap("kinds", tiny, EveryKind);
  m.HeapSeed("every_kind", kinds);
  m.Seed("open_verify_fuzzer", "every_kind_raw", EncodeRaw(kinds));
  // A dependency table of 16 slots (one page) with live and removed edges
  // and a run that wraps around, in the raw form (the sparse one has no
  // dependency area).
  Options deps = tiny;
  deps.dep_table_slots_log2 = 4;
  m.Seed("open_verify_fuzzer", "deps_raw",
         EncodeRaw(m.Heap("deps", deps, [](shmheap::Heap& heap) {
           for (uint32_t v = 0; v < 9; ++v) {
             Ok(heap.AddDep(v % 3, v * 7).status(), "add_dep");
           }
           Ok(heap.AddDep(1u << 30, 5).status(), "add_dep");
           Ok(heap.RemoveDeps(1).status(), "remove_deps");
           Ok(heap.AddDep(1, 7).status(), "add_dep");
         })));
  const std::string churn = m.Heap("churn", tiny, Churn);
  m.HeapSeed("churn", churn);
  m.HeapSeed("churn_collected",
             m.Heap("collected", tiny, [](shmheap::Heap& heap) {
               Churn(heap);
               Ok(heap.Collect().status(), "collect");
             }));
  Options no_keys = tiny;
  no_keys.keep_keys = false;
  m.HeapSeed("no_keys", m.Heap("no_keys", no_keys, [](shmheap::Heap& heap) {
    for (uint64_t i = 1; i <= 6; ++i) {
      const uint16_t v[] = {uint16_t(i), uint16_t(i * 2)};
      const int64_t dims[] = {2};
      Ok(heap.Add<uint16_t>(HashedKey{i * 0x1234567, {}}, v, dims), "add");
    }
    Ok(heap.Remove(HashedKey{2 * 0x1234567, {}}), "remove");
  }));
  m.HeapSeed("large_payload", m.Heap("large", tiny, [](shmheap::Heap& heap) {
    AddArray<uint8_t>(heap, "small", {3}, Layout::kC, 1);
    // 4 KiB and more: the payload starts on a cache line.
    std::vector<float> v(1100, 0.0f);
    v.back() = 1;
    const int64_t dims[] = {1100};
    Ok(heap.Add<float>("large", v, dims), "add");
    AddArray<int8_t>(heap, "after", {2}, Layout::kC, 2);
  }));
  Options one_session = tiny;
  one_session.max_sessions = 1;
  m.HeapSeed("killed_writer_no_free_entry",
             m.KilledWriter("killed1", one_session));
  m.HeapSeed("killed_writer", m.KilledWriter("killed2", tiny));
  Options small_table = tiny;
  small_table.table_slots_log2 = 4;
  m.HeapSeed(
      "full_table_wrapping",
      m.Heap("full", small_table, [](shmheap::Heap& heap) {
        // Homes 14 and 15 of 16 slots: the cluster wraps around.
        for (uint64_t i = 0; i < 16; ++i) {
          const int8_t v[] = {int8_t(i)};
          const int64_t dims[] = {1};
          const uint64_t hash = (i % 2 ? 15 : 14) + 16 * (i + 1);
          Ok(heap.Add<int8_t>(HashedKey{hash, absl::StrCat("w", i)}, v, dims),
             "add");
        }
        for (uint64_t i = 3; i < 16; i += 4) {
          const uint64_t hash = (i % 2 ? 15 : 14) + 16 * (i + 1);
          Ok(heap.Remove(HashedKey{hash, absl::StrCat("w", i)}), "remove");
        }
      }));
  std::string dead = churn;
  SetCollectorState(dead, kDeadPid, 3, internal::kPhaseIdle);
  m.HeapSeed("collector_died_before_compacting", dead);
  // A recorded collection whose record is all zeros: recovery must refuse
  // it (kPhaseDamaged), not follow it.
  SetCollectorState(dead, kDeadPid, 3, internal::kPhaseSliding);
  m.HeapSeed("collector_died_with_empty_record", dead);
  m.HeapSeed("collector_died_skipping",
             m.KilledCollector("gc1", tiny,
                               internal::TestingPoint::kGcSkippedRecord, 3));
  m.HeapSeed(
      "collector_died_sliding",
      m.KilledCollector("gc2", tiny, internal::TestingPoint::kGcMovedBlob, 2));
  m.HeapSeed("collector_died_finishing",
             m.KilledCollector("gc3", tiny,
                               internal::TestingPoint::kGcClearedTombstone, 1));
  // 20 keys in 32 slots (added in a read scope, which keeps the Adds from
  // growing the table): the collection grows it to 64 and dies copying.
  // Raw: both table areas hold slots then, which the sparse form (one
  // table section) cannot carry.
  m.Seed("open_verify_fuzzer", "collector_died_growing",
         EncodeRaw(m.KilledCollector(
             "gc4", tiny, internal::TestingPoint::kGcGrewSlot, 3,
             [](shmheap::Heap& heap) {
               absl::StatusOr<shmheap::ReadScope> scope = heap.Read();
               Ok(scope.status(), "read");
               for (int i = 0; i < 20; ++i) {
                 AddArray<float>(heap, absl::StrCat("g", i), {2}, Layout::kC,
                                 i);
               }
             })));
  SetCollectorState(dead, 0, 3, internal::kPhaseIdle);
  m.HeapSeed("odd_epoch_no_collector", dead);
}

// Files that made the library fault before it checked them: the fuzzers'
// view of fuzz/fuzz_regression_test.cc (the inputs libFuzzer itself found
// are saved next to these as regression_*).
void RegressionSeeds(Maker& m) {
  Options three = TinyOptions();
  three.max_sessions = 3;
  const std::string base = m.Heap("one_blob", three, [](shmheap::Heap& heap) {
    AddArray<float>(heap, "a", {3}, Layout::kC, 0);
  });
  const uint64_t heap_start = Get<uint64_t>(base, offsetof(Header, heap_start));
  const uint64_t top = Get<uint64_t>(base, offsetof(Header, top));
  const uint64_t blob_end =
      heap_start + (Get<uint64_t>(base, heap_start) >> 16) * 8;
  // The live table is in area 0 until the table grows.
  const uint64_t table =
      Get<uint64_t>(base, offsetof(Header, table_areas_offset));
  uint64_t slot = table;
  while (Get<uint64_t>(base, slot + 8) == 0) slot += sizeof(internal::Slot);
  // A dead session's open tail ending 4 bytes below top, the file's end.
  std::string tail = base;
  const uint64_t entry =
      Get<uint64_t>(base, offsetof(Header, registry_offset)) +
      2 * sizeof(SessionEntry);
  Put<uint64_t>(tail, entry + offsetof(SessionEntry, owner_pid), kDeadPid);
  Put<uint64_t>(tail, entry + offsetof(SessionEntry, chunk_start), blob_end);
  Put<uint64_t>(tail, entry + offsetof(SessionEntry, committed), blob_end);
  Put<uint64_t>(tail, entry + offsetof(SessionEntry, chunk_end), top - 4);
  m.HeapSeed("regression_unaligned_tail", tail);
  // A one-word float32 record in the file's last word, a slot pointing at
  // it.
  std::string one = base;
  Put<uint64_t>(one, blob_end, internal::FillerWord(top - 8 - blob_end));
  internal::BlobHeader word;
  word.size_words = 1;
  word.kind = static_cast<uint8_t>(Kind::kFloat32);
  Put<uint64_t>(one, top - 8, word.Encode());
  Put<uint64_t>(one, slot + 8, top - 8);
  m.HeapSeed("regression_one_word_record", one);
}

// blob_view_fuzzer's op sequences (see its header comment).
struct OpSpec {
  uint8_t code;
  std::vector<int64_t> args;
};
void WriteOps(ByteWriter& w, const std::vector<OpSpec>& ops) {
  w.U8(static_cast<uint8_t>(ops.size()));
  for (const OpSpec& op : ops) {
    w.U8(op.code);
    if (op.code == 0 || op.code == 2)
      w.U8(static_cast<uint8_t>(op.args.size()));
    for (int64_t a : op.args) w.SmallInt(a);
  }
}

void BlobViewSeeds(Maker& m, const std::string& churn,
                   const std::string& killed, const std::string& large) {
  constexpr char kTarget[] = "blob_view_fuzzer";
  struct Shape {
    std::string name;
    Kind kind;
    Layout layout;
    std::vector<int64_t> dims;
    std::vector<OpSpec> ops;
  };
  std::vector<int64_t> sixteen(16, 1);
  sixteen[0] = 2;
  sixteen[15] = 3;
  const std::vector<Shape> shapes = {
      {"scalar", Kind::kFloat64, Layout::kC, {}, {{0, {}}, {2, {}}, {3, {}}}},
      {"vector",
       Kind::kInt32,
       Layout::kC,
       {5},
       {{1, {1, 3}}, {0, {2}}, {3, {}}}},
      {"matrix_c",
       Kind::kFloat32,
       Layout::kC,
       {3, 4},
       {{2, {1}}, {0, {3}}, {1, {0, 3}}}},
      {"matrix_fortran",
       Kind::kComplex64,
       Layout::kFortran,
       {3, 4},
       {{1, {2, 2}}, {2, {1}}, {0, {3}}}},
      {"cube_fortran",
       Kind::kInt16Unsigned,
       Layout::kFortran,
       {2, 3, 4},
       {{2, {2, 4}}, {0, {1}}, {1, {1, 2}}, {3, {}}}},
      {"empty", Kind::kChar, Layout::kC, {0, 3}, {{1, {0, 0}}, {2, {0}}}},
      {"sixteen",
       Kind::kInt8Signed,
       Layout::kC,
       sixteen,
       {{2, {1, 0, 0}}, {0, std::vector<int64_t>(13, 0)}, {3, {}}}},
  };
  for (const Shape& s : shapes) {
    // Part 2: a view over a buffer.
    ByteWriter view;
    view.U8(2)
        .U8(static_cast<uint8_t>(s.kind))
        .U8(static_cast<uint8_t>(s.layout));
    view.U8(static_cast<uint8_t>(s.dims.size()));
    for (int64_t d : s.dims) view.SmallInt(d);
    WriteOps(view, s.ops);
    for (int i = 0; i < 64; ++i) view.U8(static_cast<uint8_t>(i * 37));
    m.Seed(kTarget, "view_" + s.name, view.str());
    // Part 0: the same array as a blob, keyed, then viewed.
    ByteWriter blob;
    blob.U8(0);
    blob.U8(static_cast<uint8_t>(s.kind)).SmallInt(int64_t(s.dims.size()));
    blob.SmallInt(12).U8(1).SmallInt(5);
    blob.U64(internal::BlobHeader{}.Encode());
    blob.U8(static_cast<uint8_t>(s.kind)).U8(static_cast<uint8_t>(s.layout));
    blob.U8(static_cast<uint8_t>(s.dims.size()));
    for (int64_t d : s.dims) blob.SmallInt(d);
    blob.U8(1).U8(6).Bytes(std::string("key:") + s.name.substr(0, 2));
    blob.U64(0x0123456789abcdefULL);
    WriteOps(blob, s.ops);
    for (int i = 0; i < 64; ++i) blob.U8(static_cast<uint8_t>(i * 11));
    m.Seed(kTarget, "blob_" + s.name, blob.str());
  }
  // Part 0: a key and a payload each just under ComputeGeometry's limit,
  // together past the 48-bit size field (fuzz/fuzz_regression_test.cc).
  const int64_t part = internal::kMaxBlobWords * 8 / 2;
  m.Seed(kTarget, "regression_geometry_past_48_bits",
         ByteWriter()
             .U8(0)
             .U8(static_cast<uint8_t>(Kind::kChar))
             .SmallInt(0)
             .SmallInt(part)
             .U8(1)
             .SmallInt(part)
             .str());
  // Part 1: the heaps of real files, with their top and session records.
  auto walk_seed = [&](const std::string& name, const std::string& file) {
    const uint64_t heap_start =
        Get<uint64_t>(file, offsetof(Header, heap_start));
    const uint64_t top = Get<uint64_t>(file, offsetof(Header, top));
    const uint64_t registry =
        Get<uint64_t>(file, offsetof(Header, registry_offset));
    const uint32_t sessions =
        Get<uint32_t>(file, offsetof(Header, max_sessions));
    ByteWriter w;
    w.U8(1).U16(static_cast<uint16_t>((top - heap_start) / 8)).U8(0);
    for (uint32_t i = 0; i < 2; ++i) {
      for (int word = 0; word < 11; ++word) {
        uint64_t v = 0;
        if (i < sessions) {
          const size_t e = registry + i * sizeof(SessionEntry);
          const size_t at = word < 8 ? e + 8 * word
                                     : e + offsetof(SessionEntry, chunk_start) +
                                           8 * (word - 8);
          v = Get<uint64_t>(file, at);
        }
        w.Offset(v, heap_start);
      }
    }
    WriteOps(w, {{3, {}}, {1, {0, 1}}, {2, {0}}});
    std::string heap = file.substr(heap_start, top - heap_start);
    heap.erase(heap.find_last_not_of('\0') + 1);
    w.Bytes(heap);
    m.Seed(kTarget, "walk_" + name, w.str());
  };
  walk_seed("churn", churn);
  walk_seed("killed_writer", killed);
  walk_seed("large_payload", large);
}

}  // namespace
}  // namespace shmheap::fuzz

int main(int argc, char** argv) {
  using namespace shmheap::fuzz;
  if (argc != 2) Die("usage: make_corpus OUTPUT_DIR (fuzz/corpus)");
  char scratch[] = "/tmp/make_corpus.XXXXXX";
  if (mkdtemp(scratch) == nullptr) Die("mkdtemp");
  Maker m(argv[1], scratch);
  HeapSeeds(m);
  RegressionSeeds(m);
  const shmheap::Options tiny = TinyOptions();
  BlobViewSeeds(
      m, m.Heap("walk_churn", tiny, Churn), m.KilledWriter("walk_killed", tiny),
      m.Heap("walk_large", tiny, [](shmheap::Heap& heap) {
        std::vector<double> v(600, 0.5);
        const int64_t dims[] = {20, 30};
        Ok(heap.Add<double>("large", v, dims, shmheap::Layout::kFortran),
           "add");
        EveryKind(heap);
      }));
  std::filesystem::remove_all(scratch);
  return 0;
}
