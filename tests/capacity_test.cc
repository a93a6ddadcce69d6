// Capacity faults: a full table, a full heap, a full backing store and
// max_sessions each return kResourceExhausted, never a crash or a signal;
// everything published before stays readable (from this process and from
// others), and writes are accepted again once a Collect (or a departing
// process) frees what ran out.

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "heap/segment.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using testing::RunProcesses;

using testing::TempPath;
using testing::UniqueName;

std::vector<double> ValueOf(int i, int n) {
  std::vector<double> v(n);
  for (int j = 0; j < n; ++j) v[j] = i * 1000.0 + j;
  return v;
}

// Whether keys k<from>..k<to-1> (those not removed) hold ValueOf exactly,
// checked in a forked process (another session reading while this one is
// out of capacity).
bool AnotherProcessReadsAll(const Heap& heap, int from, int to, int n,
                            int removed_modulo) {
  std::vector<int> codes = RunProcesses(1, [&](int) {
    for (int i = from; i < to; ++i) {
      if (removed_modulo && i % removed_modulo == 0) continue;
      absl::StatusOr<ArrayView<double>> v =
          heap.Get<double>(absl::StrCat("k", i));
      if (!v.ok() || v->size() != n) return 1;
      for (int j = 0; j < n; ++j) {
        if ((*v)(j) != i * 1000.0 + j) return 2;
      }
    }
    return 0;
  });
  return codes[0] == 0;
}

// Adds k<start>, k<start+1>, ... until an add fails; returns how many were
// added and the failure.
int AddUntilFull(Heap& heap, int start, int n, absl::Status* failure) {
  const int64_t dims[] = {n};
  for (int i = start;; ++i) {
    absl::StatusOr<bool> r =
        heap.Add<double>(absl::StrCat("k", i), ValueOf(i, n), dims);
    if (!r.ok()) {
      *failure = r.status();
      return i - start;
    }
    if (!*r) {
      *failure = absl::InternalError("fresh key already present");
      return i - start;
    }
    if (i - start > 1000000) return i - start;
  }
}

TEST(Capacity, FullTableRefusesNewKeysUntilACollectClearsTombstones) {
  Options o;
  o.heap_bytes = 16 << 20;
  o.table_slots_log2 = 6;      // 64 slots
  o.max_table_slots_log2 = 6;  // that stay 64 (tests/grow_test.cc grows)
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  absl::Status full;
  const int added = AddUntilFull(*heap, 0, 4, &full);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  ASSERT_GT(added, 32);
  EXPECT_TRUE(AnotherProcessReadsAll(*heap, 0, added, 4, 0));
  // Replacing a present key needs no new slot, so it still works.
  const int64_t dims[] = {4};
  EXPECT_TRUE(*heap->Replace<double>("k1", ValueOf(1, 4), dims));
  // Removing leaves tombstones: the table is still full for new keys...
  for (int i = 0; i < added; i += 2) {
    ASSERT_TRUE(heap->Remove(absl::StrCat("k", i)).ok());
  }
  absl::Status still;
  EXPECT_EQ(AddUntilFull(*heap, 1000, 4, &still), 0);
  EXPECT_EQ(still.code(), absl::StatusCode::kResourceExhausted) << still;
  // ...until a collection clears them.
  absl::StatusOr<GcReport> gc = heap->Collect();
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_GE(gc->tombstones_cleared, static_cast<uint64_t>(added / 2));
  absl::Status again;
  EXPECT_GE(AddUntilFull(*heap, 1000, 4, &again), added / 2);
  EXPECT_EQ(again.code(), absl::StatusCode::kResourceExhausted) << again;
  EXPECT_TRUE(AnotherProcessReadsAll(*heap, 0, added, 4, 2));
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

TEST(Capacity, FullHeapRefusesWritesUntilACollectFreesSpace) {
  Options o;
  o.heap_bytes = 2 << 20;
  o.chunk_bytes = 64 << 10;
  o.table_slots_log2 = 12;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  absl::Status full;
  const int added = AddUntilFull(*heap, 0, 500, &full);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_NE(full.message().find("full"), std::string::npos) << full;
  ASSERT_GT(added, 100);
  // Every way of writing fails the same way, and changes nothing.
  const int64_t dims[] = {500};
  EXPECT_EQ(heap->Replace<double>("k1", ValueOf(7, 500), dims).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(heap->Reserve<double>("new", dims).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(heap->Move("k2", "moved").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(heap->Contains("k2"));
  EXPECT_FALSE(heap->Contains("moved"));
  EXPECT_TRUE(AnotherProcessReadsAll(*heap, 0, added, 500, 0));
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
  // Free half, collect: writes are accepted again, about as many as freed.
  for (int i = 0; i < added; i += 2) {
    ASSERT_TRUE(heap->Remove(absl::StrCat("k", i)).ok());
  }
  absl::StatusOr<GcReport> gc = heap->Collect();
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_LT(gc->bytes_after, gc->bytes_before);
  absl::Status again;
  EXPECT_GE(AddUntilFull(*heap, 10000, 500, &again), added / 2 - 16);
  EXPECT_EQ(again.code(), absl::StatusCode::kResourceExhausted) << again;
  EXPECT_TRUE(AnotherProcessReadsAll(*heap, 0, added, 500, 2));
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

// The backing store is full when the file cannot grow (RLIMIT_FSIZE here;
// ENOSPC takes the same path through fallocate). Without the check the
// write crossing the limit would raise SIGXFSZ and kill the process.
TEST(Capacity, FullBackingFileRefusesWritesUntilACollectShrinksTheHeap) {
  const std::string path = TempPath("capacity-fsize");
  unlink(path.c_str());
  std::vector<int> codes = RunProcesses(1, [&](int) {
    Options o;
    o.heap_bytes = 64 << 20;
    o.chunk_bytes = 64 << 10;
    o.table_slots_log2 = 12;
    absl::StatusOr<Heap> heap = Heap::CreateFile(path, o);
    if (!heap.ok()) return 10;
    const uint64_t start = heap->segment().header().heap_start;
    struct rlimit rl = {start + (1 << 20), RLIM_INFINITY};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 11;
    absl::Status full;
    const int added = AddUntilFull(*heap, 0, 500, &full);
    if (full.code() != absl::StatusCode::kResourceExhausted) return 12;
    if (full.message().find("RLIMIT_FSIZE") == std::string::npos) return 13;
    if (added < 50) return 14;
    if (!AnotherProcessReadsAll(*heap, 0, added, 500, 0)) return 15;
    for (int i = 0; i < added; i += 2) {
      if (!heap->Remove(absl::StrCat("k", i)).ok()) return 16;
    }
    if (!heap->Collect().ok()) return 17;
    absl::Status again;
    if (AddUntilFull(*heap, 10000, 500, &again) < added / 2 - 16) return 18;
    if (again.code() != absl::StatusCode::kResourceExhausted) return 19;
    if (!AnotherProcessReadsAll(*heap, 0, added, 500, 2)) return 20;
    if (!heap->Verify().ok()) return 21;
    return 0;
  });
  EXPECT_EQ(codes[0], 0);
  unlink(path.c_str());
}

// A memory-backed heap keeps min_available_bytes of memory free for the
// rest of the machine: past it, creating or growing is an error, not the
// OOM killer. That holds for any floor a header can carry, up to 2^64 - 1:
// a floor near 2^64 once wrapped the check's sum (length + floor) to a
// small number and so turned the floor off.
TEST(Capacity, MemoryFloorIsAnErrorAndTheHeapStaysUsable) {
  Options o;
  o.heap_bytes = 16 << 20;
  o.min_available_bytes = uint64_t{1} << 48;  // the most allowed: > any RAM
  absl::StatusOr<Heap> refused = Heap::Create(o);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("memory available"),
            std::string::npos)
      << refused.status();

  // Growing past the floor: a heap whose floor is raised after creation
  // (each attach reads the floor from the header).
  o.min_available_bytes = 0;
  const std::string name = UniqueName("capacity-floor");
  absl::StatusOr<Heap> heap = Heap::CreateNamed(name, o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  const int64_t dims[] = {4};
  ASSERT_TRUE(*heap->Add<double>("k0", ValueOf(0, 4), dims));
  for (const uint64_t floor :
       {uint64_t{1} << 50, UINT64_MAX - (uint64_t{1} << 20), UINT64_MAX}) {
    SCOPED_TRACE(absl::StrCat("floor ", floor));
    heap->segment().header().min_available_bytes = floor;
    absl::StatusOr<Heap> floored = Heap::OpenNamed(name);
    ASSERT_TRUE(floored.ok()) << floored.status();
    absl::StatusOr<bool> r = floored->Add<double>("k1", ValueOf(1, 4), dims);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
        << r.status();
    EXPECT_NE(r.status().message().find("memory available"), std::string::npos)
        << r.status();
    EXPECT_FALSE(floored->Contains("k1"));
    absl::StatusOr<ArrayView<double>> v = floored->Get<double>("k0");
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ((*v)(3), 3.0);
    EXPECT_TRUE(floored->Verify().ok()) << floored->Verify();
  }
  Heap::UnlinkNamed(name).IgnoreError();
}

// max_sessions live processes: the next one is refused; when one of them
// exits, or is killed, the next one gets in.
TEST(Capacity, MaxSessionsRefusesTheNextProcessUntilOneLeavesOrDies) {
  Options o;
  o.heap_bytes = 16 << 20;
  o.max_sessions = 3;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  const int64_t dims[] = {4};
  ASSERT_TRUE(*heap->Add<double>("k0", ValueOf(0, 4), dims));  // session 1

  // Two holders join and wait until told to go (the first exits cleanly,
  // the second is killed).
  int go[2][2];
  pid_t holders[2];
  for (int h = 0; h < 2; ++h) ASSERT_EQ(pipe(go[h]), 0);
  for (int h = 0; h < 2; ++h) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    holders[h] = fork();
    if (holders[h] == 0) {
      // Only the master may hold the write ends, so closing one is an EOF.
      close(go[0][1]);
      close(go[1][1]);
      const std::string key = absl::StrCat("k", h + 1);
      const bool ok = heap->Add<double>(key, ValueOf(h + 1, 4), dims).ok();
      char c = ok ? 'y' : 'n';
      if (write(ready[1], &c, 1) != 1) _exit(3);
      if (read(go[h][0], &c, 1) < 0) _exit(4);
      _exit(0);
    }
    close(go[h][0]);
    char c = 0;
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    ASSERT_EQ(c, 'y');
    close(ready[0]);
    close(ready[1]);
  }
  auto newcomer = [&](int key) {
    return RunProcesses(1, [&](int) {
      absl::StatusOr<bool> r =
          heap->Add<double>(absl::StrCat("k", key), ValueOf(key, 4), dims);
      if (r.ok()) return *r ? 0 : 1;
      return r.status().code() == absl::StatusCode::kResourceExhausted ? 42 : 2;
    })[0];
  };
  EXPECT_EQ(newcomer(3), 42) << "a fourth process joined 3 sessions";
  // The sessions already in keep working.
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<ArrayView<double>> v =
        heap->Get<double>(absl::StrCat("k", i));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ((*v)(3), i * 1000.0 + 3);
  }
  // A holder that exits leaves a dead entry, which the next joiner takes.
  close(go[0][1]);
  int status = 0;
  ASSERT_EQ(waitpid(holders[0], &status, 0), holders[0]);
  EXPECT_EQ(newcomer(3), 0);
  EXPECT_EQ(newcomer(4), 0);
  // A holder killed outright: its session is reclaimed by the next joiner.
  kill(holders[1], SIGKILL);
  ASSERT_EQ(waitpid(holders[1], &status, 0), holders[1]);
  EXPECT_EQ(newcomer(5), 0);
  close(go[1][1]);
  for (int i = 0; i <= 5; ++i)
    EXPECT_TRUE(heap->Contains(absl::StrCat("k", i)));
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

}  // namespace
}  // namespace shmheap
