// Sessions (heap/session.h): the scope handshake with the collector, owners
// recognised by pid and start time, and claims that a dead owner left in
// flight. Each test forks real processes; where a window matters, a testing
// hook (heap/testing_hooks.h) holds a process inside it, so that what the
// test proves does not depend on timing.
//
// What this proves:
//   1. A session that read an even gc epoch and has not yet set its pinned
//      flag is invisible to a collector. A collection whose poll passes the
//      session's entry in that window stops the world without it; the
//      session's second load of the epoch, after it pins (Dekker's
//      pattern), is what keeps it from entering its scope mid-collection: it
//      waits, and then sees an even epoch, and its slot and its view stay
//      put under its pin.
//   2. An entry whose recorded start time differs from that of the live
//      process now running under its pid (a reused pid) belongs to a dead
//      owner: stats() does not count it, the next joiner takes it over when
//      the registry is full, and the collector ignores its pinned flag.
//   3. A dead owner's entry with a chunk claim in flight stays as it is
//      until a collection resolves the claim: a full registry refuses the
//      next joiner rather than hand it the entry (whose claim record is all
//      that describes the claimed range), and after Collect the entry is
//      free, the heap verifies and its top is exactly the live bytes.
//
// The test reads and writes shared atomics (registry entries, the header)
// with the default order, seq_cst: the strongest, where speed is no concern.

#include "heap/session.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hashtable/table.h"
#include "heap/layout.h"
#include "heap/testing_hooks.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using internal::TestingPoint;
using testing::ArrayFor;
using testing::KeyName;
using testing::RunProcesses;
using testing::SharedArray;
using testing::ValueFor;

// One byte over a pipe; a read gives up after `timeout_ms` (-1 when it
// does), so a broken protocol fails the test instead of hanging it.
void SendByte(int fd, char c) {
  if (write(fd, &c, 1) != 1) _exit(90);
}
int ReceiveByte(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return -1;
  char c;
  return read(fd, &c, 1) == 1 ? c : -1;
}

// A pipe; both ends close when it goes out of scope.
struct Pipe {
  Pipe() {
    if (pipe(fd) != 0) std::abort();
  }
  ~Pipe() {
    close(fd[0]);
    close(fd[1]);
  }
  int read_end() const { return fd[0]; }
  int write_end() const { return fd[1]; }
  int fd[2];
};

// Adds ArrayFor(id, 0, n) under KeyName(id).
absl::StatusOr<bool> AddValue(Heap& heap, uint64_t id, size_t n) {
  const std::vector<float> v = ArrayFor(id, 0, n);
  const int64_t dims[] = {static_cast<int64_t>(n)};
  return heap.Add<float>(KeyName(id), v, dims);
}

// AddValue as a child's exit code: 0 published, 42 refused for want of a
// session (kResourceExhausted), anything else a failure.
int AddCode(Heap& heap, uint64_t id, size_t n) {
  const absl::StatusOr<bool> r = AddValue(heap, id, n);
  if (r.ok()) return *r ? 0 : 1;
  return absl::IsResourceExhausted(r.status()) ? 42 : 2;
}

::testing::AssertionResult AddArray(Heap& heap, uint64_t id, size_t n) {
  const absl::StatusOr<bool> r = AddValue(heap, id, n);
  if (!r.ok()) return ::testing::AssertionFailure() << r.status();
  if (!*r) return ::testing::AssertionFailure() << KeyName(id) << " existed";
  return ::testing::AssertionSuccess();
}

// Whether `v` holds exactly ArrayFor(id, 0, n).
bool ViewHolds(const ArrayView<float>& v, uint64_t id, size_t n) {
  if (v.size() != static_cast<int64_t>(n)) return false;
  for (size_t j = 0; j < n; ++j) {
    if (v(j) != ValueFor(id, 0, j)) return false;
  }
  return true;
}

// Whether KeyName(id) holds exactly ArrayFor(id, 0, n).
bool HoldsArray(const Heap& heap, uint64_t id, size_t n) {
  absl::StatusOr<ArrayView<float>> v = heap.Get<float>(KeyName(id));
  return v.ok() && ViewHolds(*v, id, n);
}

// A 16 MiB heap with 1,024 slots and 64 KiB chunks.
absl::StatusOr<Heap> SmallHeap(uint32_t max_sessions) {
  Options o;
  o.heap_bytes = 16 << 20;
  o.table_slots_log2 = 10;
  o.chunk_bytes = 64 << 10;
  o.max_sessions = max_sessions;
  return Heap::Create(o);
}

// Forks a child that joins, takes a view of KeyName(id) and stays in scope
// until killed; returns its pid once it holds the view, or -1.
pid_t ForkViewHolder(Heap& heap, uint64_t id) {
  Pipe ready;
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(60);  // dies within a minute, killed or not
    absl::StatusOr<ArrayView<float>> v = heap.Get<float>(KeyName(id));
    SendByte(ready.write_end(), v.ok() ? 'y' : 'n');
    for (;;) pause();
  }
  if (pid < 0 || ReceiveByte(ready.read_end(), 20000) == 'y') return pid;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

// Kills and reaps a child of ForkViewHolder.
void KillChild(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// The registry entry whose owner is `pid`, or -1.
int EntryOf(const Heap& heap, pid_t pid) {
  const internal::Segment& seg = heap.segment();
  for (uint32_t i = 0; i < seg.header().max_sessions; ++i) {
    if (seg.registry()[i].owner_pid.load() == static_cast<uint64_t>(pid)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

// --- 1. The epoch is re-read after pinning.
//
// Three processes besides this one (the collector): a child that will try to
// enter its scope, and a blocker holding a view, which keeps the collector
// polling. The child is held by a hook between its epoch read (even) and its
// pin. The collector makes the epoch odd and polls: it passes the child's
// entry (pinned 0) and reaches the blocker's, where its own hook (in
// OwnerAlive) lets the child go on and waits to hear what it did, then kills
// the blocker, so the poll ends with the world stopped and the collection
// runs. A correct session sees the odd epoch on its second load and waits
// ('w'), entering only after the collection. Without that load it enters at
// once ('e'), while the collector goes on to compact: it sees an odd epoch
// in scope, and its key's slot and its view's data change under its pin.

// The child's progress through EnterShared, driven by ScopeHook.
enum ScopeState { kDisarmed, kArmed, kAwaitingOutcome };
ScopeState g_scope_state = kDisarmed;
int g_to_parent = -1;
int g_from_parent = -1;

void ScopeHook(TestingPoint point) {
  if (point == TestingPoint::kScopeEpochRead && g_scope_state == kArmed) {
    // In the window: the epoch read was even, pinned is not yet set. Hold
    // here until the collector has passed this session's entry.
    g_scope_state = kAwaitingOutcome;
    SendByte(g_to_parent, 'h');
    if (ReceiveByte(g_from_parent, 20000) != 'c') _exit(91);
  } else if (point == TestingPoint::kScopeWait &&
             g_scope_state == kAwaitingOutcome) {
    g_scope_state = kDisarmed;
    SendByte(g_to_parent, 'w');  // the session saw the collection: it waits
  }
}

// The collector's side, in this process: the first owner check of its poll
// (the blocker's entry, the only pinned one) releases the child, records
// what it did, and kills the blocker.
int g_to_child = -1;
int g_from_child = -1;
pid_t g_blocker = -1;
int g_outcome = -1;

void PollHook(TestingPoint point) {
  if (point != TestingPoint::kOwnerCheck || g_blocker < 0) return;
  SendByte(g_to_child, 'c');
  g_outcome = ReceiveByte(g_from_child, 20000);
  KillChild(g_blocker);
  g_blocker = -1;
}

// What the child saw in scope.
struct InScope {
  uint32_t epoch;
  uint32_t phase;
  uint64_t slot_at_entry;
  uint64_t slot_after_collection;
  bool view_exact_at_entry;
  bool view_exact_after_collection;
  bool value_exact_after_scope;
};

TEST(Scope, EnteringRereadsTheEpochAfterPinning) {
  absl::StatusOr<Heap> heap = SmallHeap(256);
  ASSERT_TRUE(heap.ok()) << heap.status();
  // Garbage below key 1, so the collection slides key 1's blob down (and
  // zeroes where it was).
  constexpr size_t kLen = 300;
  ASSERT_TRUE(AddArray(*heap, 0, 1000));
  ASSERT_TRUE(AddArray(*heap, 1, kLen));
  ASSERT_TRUE(AddArray(*heap, 2, kLen));  // the blocker's view
  ASSERT_TRUE(heap->Remove(KeyName(0)).ok());
  const uint64_t hash = heap->Hash(KeyName(1));

  Pipe to_parent, to_child;
  SharedArray<InScope> seen(1);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    alarm(60);  // a broken handshake must not outlive the test
    if (!HoldsArray(*heap, 1, kLen)) _exit(1);  // joins, out of scope again
    const internal::Segment& seg = heap->segment();
    internal::Table table(seg.slots(), seg.table_slots_log2());
    const std::optional<uint64_t> slot = table.Find(hash);
    if (!slot) _exit(2);
    SendByte(to_parent.write_end(), 'j');
    g_to_parent = to_parent.write_end();
    g_from_parent = to_child.read_end();
    g_scope_state = kArmed;
    internal::SetTestingHook(&ScopeHook);
    {
      absl::StatusOr<Pin> pin = heap->Enter();
      if (!pin.ok()) _exit(3);
      seen[0].epoch = seg.header().gc_epoch.load();
      seen[0].phase = seg.header().phase.load();
      seen[0].slot_at_entry = table.LoadAddr(*slot);
      absl::StatusOr<ArrayView<float>> view = heap->Get<float>(KeyName(1));
      if (!view.ok()) _exit(4);
      seen[0].view_exact_at_entry = ViewHolds(*view, 1, kLen);
      if (g_scope_state == kAwaitingOutcome) {
        // Entered without waiting: the collector is still polling.
        g_scope_state = kDisarmed;
        SendByte(g_to_parent, 'e');
      }
      if (ReceiveByte(g_from_parent, 20000) != 'd') _exit(5);
      seen[0].slot_after_collection = table.LoadAddr(*slot);
      seen[0].view_exact_after_collection = ViewHolds(*view, 1, kLen);
    }
    seen[0].value_exact_after_scope = HoldsArray(*heap, 1, kLen);
    _exit(0);
  }
  // The blocker joins after the child, so its entry comes later in the
  // collector's poll.
  ASSERT_EQ(ReceiveByte(to_parent.read_end(), 20000), 'j');
  const pid_t blocker = ForkViewHolder(*heap, 2);
  ASSERT_GT(blocker, 0);
  ASSERT_EQ(ReceiveByte(to_parent.read_end(), 20000), 'h');
  ASSERT_LT(EntryOf(*heap, child), EntryOf(*heap, blocker));

  g_to_child = to_child.write_end();
  g_from_child = to_parent.read_end();
  g_blocker = blocker;
  internal::SetTestingHook(&PollHook);
  CollectOptions opts;
  opts.deadline = std::chrono::milliseconds(20000);
  absl::StatusOr<GcReport> r = heap->Collect(opts);
  internal::SetTestingHook(nullptr);
  if (g_blocker > 0) KillChild(g_blocker);  // the poll never reached it
  SendByte(to_child.write_end(), 'd');
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ran);
  EXPECT_GT(r->blobs_moved, 0u);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "child status " << status;

  EXPECT_EQ(g_outcome, 'w')
      << "the session entered its scope while the world was being stopped "
         "('e') instead of waiting for the collection ('w')";
  EXPECT_EQ(seen[0].epoch % 2, 0u) << "in scope with a collection running";
  EXPECT_EQ(seen[0].phase, internal::kPhaseIdle);
  EXPECT_EQ(seen[0].slot_at_entry, seen[0].slot_after_collection)
      << "the slot changed under the session's pin: the blob moved";
  EXPECT_TRUE(seen[0].view_exact_at_entry);
  EXPECT_TRUE(seen[0].view_exact_after_collection)
      << "the view's data changed under it";
  EXPECT_TRUE(seen[0].value_exact_after_scope);
  EXPECT_TRUE(HoldsArray(*heap, 1, kLen));
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

// --- 2. A reused pid is not the owner.

// A heap of two sessions: this process holds one; a child (`holder`) holds
// the other and sits in scope holding a view of key 1. Then the holder's
// entry gets a start time other than the holder's: the record of a process
// that died, whose pid the live holder now has.
class ReusedPid : public ::testing::Test {
 protected:
  static constexpr size_t kLen = 50;

  void SetUp() override {
    absl::StatusOr<Heap> heap = SmallHeap(2);
    ASSERT_TRUE(heap.ok()) << heap.status();
    heap_.emplace(*std::move(heap));
    ASSERT_TRUE(AddArray(*heap_, 0, kLen));  // this process's session
    ASSERT_TRUE(AddArray(*heap_, 1, kLen));
    holder_ = ForkViewHolder(*heap_, 1);
    ASSERT_GT(holder_, 0);
    entry_ = EntryOf(*heap_, holder_);
    ASSERT_GE(entry_, 0);
    internal::SessionEntry& e = heap_->segment().registry()[entry_];
    ASSERT_EQ(e.pinned.load(), 1u);
    ASSERT_EQ(heap_->stats().sessions, 2u);  // both owners alive so far
    const uint64_t start = internal::ProcessStartTime(holder_);
    ASSERT_EQ(e.owner_start_time.load(), start);
    ASSERT_GT(start, 1u);
    // An earlier process's start time (never 0, which means "unknown").
    e.owner_start_time.store(start - 1);
  }

  void TearDown() override {
    if (holder_ > 0) KillChild(holder_);
  }

  std::optional<Heap> heap_;
  pid_t holder_ = -1;
  int entry_ = -1;
};

TEST_F(ReusedPid, StatsDoNotCountTheEntry) {
  EXPECT_EQ(heap_->stats().sessions, 1u)
      << "an entry whose start time is not its pid's process counted as live";
}

TEST_F(ReusedPid, JoinReclaimsTheEntry) {
  // Both entries are taken: the newcomer gets in only by taking over the
  // one whose owner is dead.
  SharedArray<uint64_t> newcomer(1);
  const std::vector<int> codes = RunProcesses(1, [&](int) {
    newcomer[0] = static_cast<uint64_t>(getpid());
    return AddCode(*heap_, 2, kLen);
  });
  ASSERT_EQ(codes[0], 0) << "42: the registry refused the newcomer";
  EXPECT_EQ(heap_->segment().registry()[entry_].owner_pid.load(), newcomer[0]);
  EXPECT_TRUE(HoldsArray(*heap_, 2, kLen));
}

TEST_F(ReusedPid, CollectorIgnoresThePinnedFlag) {
  CollectOptions opts;
  opts.deadline = std::chrono::milliseconds(2000);
  absl::StatusOr<GcReport> r = heap_->Collect(opts);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ran);
  // The collection freed the dead owner's entry.
  EXPECT_EQ(heap_->segment().registry()[entry_].owner_pid.load(),
            internal::kSessionFree);
  for (uint64_t id : {0, 1}) EXPECT_TRUE(HoldsArray(*heap_, id, kLen)) << id;
  EXPECT_TRUE(heap_->Verify().ok()) << heap_->Verify();
}

// --- 3. A claim in flight keeps its entry.

void DieAtChunkClaim(TestingPoint point) {
  if (point == TestingPoint::kChunkClaimed) raise(SIGKILL);
}

TEST(ClaimInFlight, EntryStaysUntilACollectionResolvesIt) {
  absl::StatusOr<Heap> heap = SmallHeap(2);
  ASSERT_TRUE(heap.ok()) << heap.status();
  constexpr size_t kLen = 40;
  ASSERT_TRUE(AddArray(*heap, 0, kLen));  // this process's session
  // A worker joins and dies between its CAS on the heap top and recording
  // the chunk: its claim record is all that describes the range.
  SharedArray<uint64_t> worker(1);
  std::vector<int> codes = RunProcesses(1, [&](int) {
    worker[0] = static_cast<uint64_t>(getpid());
    internal::SetTestingHook(&DieAtChunkClaim);
    (void)AddArray(*heap, 1, kLen);
    return 1;  // not reached
  });
  ASSERT_EQ(codes[0], 1000 + SIGKILL);
  const int dead = EntryOf(*heap, static_cast<pid_t>(worker[0]));
  ASSERT_GE(dead, 0);
  const internal::SessionEntry& e = heap->segment().registry()[dead];
  ASSERT_NE(e.claim_end.load(), 0u);
  ASSERT_EQ(e.chunk_end.load(), 0u);
  EXPECT_EQ(heap->stats().sessions, 1u);

  // The registry is full: one live owner, one dead one with its claim in
  // flight. The next process is refused, and the entry keeps its claim.
  auto newcomer = [&](uint64_t id) {
    return RunProcesses(1, [&](int) { return AddCode(*heap, id, kLen); })[0];
  };
  EXPECT_EQ(newcomer(2), 42) << "a joiner took an entry whose claim is "
                                "in flight";
  EXPECT_EQ(e.owner_pid.load(), worker[0]);
  EXPECT_NE(e.claim_end.load(), 0u);
  EXPECT_FALSE(heap->Contains(KeyName(2)));
  ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();

  // A collection resolves the claim and frees the entry; the next joiner
  // gets it.
  absl::StatusOr<GcReport> r = heap->Collect();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->ran);
  EXPECT_EQ(e.owner_pid.load(), internal::kSessionFree);
  EXPECT_EQ(e.claim_end.load(), 0u);
  Stats s = heap->stats();
  EXPECT_EQ(s.heap_top, s.live_bytes);
  EXPECT_EQ(newcomer(3), 0);
  EXPECT_TRUE(HoldsArray(*heap, 0, kLen));
  EXPECT_TRUE(HoldsArray(*heap, 3, kLen));
  EXPECT_FALSE(heap->Contains(KeyName(1)));
  ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
  r = heap->Collect();
  ASSERT_TRUE(r.ok()) << r.status();
  s = heap->stats();
  EXPECT_EQ(s.heap_top, s.live_bytes);
  EXPECT_EQ(s.sessions, 1u);
}

}  // namespace
}  // namespace shmheap
