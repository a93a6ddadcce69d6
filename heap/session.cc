#include "heap/session.h"

#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "heap/blob.h"
#include "heap/testing_hooks.h"

namespace shmheap::internal {
namespace {

std::atomic<uint64_t> g_fork_generation{0};

void OnForkChild() {
  // Relaxed: the child is single-threaded when this runs.
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

void InstallForkHandler() {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, OnForkChild); });
}

// Reads /proc/PID/stat: state (field 3) and start time (field 22).
bool ReadProcStat(pid_t pid, char* state, uint64_t* start_time) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and parentheses: fields
  // after it start past the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return false;
  unsigned long long start = 0;
  char st = 0;
  // Fields 3 .. 22: state, then 18 numbers, then starttime.
  if (std::sscanf(p + 1,
                  " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d "
                  "%*d %*d %*d %*d %*d %llu",
                  &st, &start) != 2) {
    return false;
  }
  *state = st;
  *start_time = start;
  return true;
}

}  // namespace

uint64_t ProcessStartTime(pid_t pid) {
  char state;
  uint64_t start = 0;
  return ReadProcStat(pid, &state, &start) ? start : 0;
}

char ProcessState(pid_t pid) {
  char state;
  uint64_t start = 0;
  return ReadProcStat(pid, &state, &start) ? state : 0;
}

bool ProcessAlive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  char state;
  uint64_t start = 0;
  if (!ReadProcStat(pid, &state, &start)) {
    // /proc cannot tell (not mounted, or the process just went): trust kill.
    return kill(pid, 0) == 0 || errno == EPERM;
  }
  if (state == 'Z' || state == 'X') return false;
  return start_time == 0 || start == start_time;
}

bool OwnerAlive(const SessionEntry& e, uint64_t owner) {
  RunTestingHook(TestingPoint::kOwnerCheck);
  if (owner == kSessionFree) return false;
  if (owner & kSessionClaiming) {
    return ProcessAlive(static_cast<pid_t>(owner & ~kSessionClaiming), 0);
  }
  // Acquire: pairs with the release store of the pid in Join, so the start
  // time read here is the one its owner wrote.
  return ProcessAlive(static_cast<pid_t>(owner),
                      e.owner_start_time.load(std::memory_order_acquire));
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t value, int timeout_ms) {
  struct timespec ts;
  ts.tv_sec = timeout_ms / 1000;
  ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
  // Not FUTEX_PRIVATE: the word is shared between processes.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, value, &ts,
          nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX,
          nullptr, nullptr, 0);
}

uint64_t ForkGeneration() {
  // Relaxed: only compared with a value the same thread (or its fork
  // parent) stored; no data is published through it.
  return g_fork_generation.load(std::memory_order_relaxed);
}

bool SumCounters(const Segment& seg, uint64_t (&sum)[kNumCounters]) {
  const Header& h = seg.header();
  bool in_range = true;
  for (int c = 0; c < kNumCounters; ++c) {
    sum[c] = h.retired_counters[c].load(std::memory_order_relaxed);
    for (uint32_t e = 0; e < h.max_sessions; ++e) {
      in_range &= !__builtin_add_overflow(
          sum[c], seg.registry()[e].counters[c].load(std::memory_order_relaxed),
          &sum[c]);
    }
  }
  return in_range;
}

namespace {
// Relaxed: installed once, before any heap is used (Heap::FromSegment).
std::atomic<CollectionRecovery> g_recovery{nullptr};
}  // namespace

void SetCollectionRecovery(CollectionRecovery recovery) {
  g_recovery.store(recovery, std::memory_order_relaxed);
}

absl::Status CheckCollectorAlive(const Segment& segment) {
  Header& h = segment.header();
  // Acquire: pairs with the collector's release stores of gc_lock/phase.
  const uint32_t collector = h.gc_lock.load(std::memory_order_acquire);
  if (h.phase.load(std::memory_order_acquire) == kPhaseDamaged) {
    return absl::DataLossError(absl::StrCat(
        segment.Describe(),
        ": a collection found the heap damaged (it does not parse); its "
        "contents cannot be trusted"));
  }
  if (collector == 0) {
    // seq_cst: the epoch's accesses are part of the Dekker handshake.
    if ((h.gc_epoch.load(std::memory_order_seq_cst) & 1) == 0) {
      return absl::OkStatus();
    }
    // An odd epoch with no lock: a collector has taken the lock since it
    // was loaded (the CAS below then fails), or nobody will make the epoch
    // even (only a corrupt file, or a heap whose collector state was
    // reset by hand, gets here).
  } else if (ProcessAlive(static_cast<pid_t>(collector), 0)) {
    return absl::OkStatus();
  }
  // The collector died (or none holds the lock and the epoch is odd). The
  // lock is taken first, so that exactly one process acts, and no new
  // collection can make the epoch odd meanwhile and have its stopped world
  // reopened under it. What to do is decided only under the lock: the
  // state loaded above may be older than a collection that has since
  // begun or ended.
  uint32_t expected = collector;
  // acq_rel: what follows must come after the claim, and see the last
  // collector's stores.
  if (!h.gc_lock.compare_exchange_strong(expected,
                                         static_cast<uint32_t>(getpid()),
                                         std::memory_order_acq_rel)) {
    return absl::OkStatus();  // a collector runs, or another process acts
  }
  const uint32_t phase = h.phase.load(std::memory_order_acquire);
  if (phase != kPhaseIdle && phase != kPhaseDamaged) {
    // A collection was left mid-way, with the world stopped: finish it.
    // Relaxed: installed before any heap was opened.
    const CollectionRecovery recover =
        g_recovery.load(std::memory_order_relaxed);
    if (recover != nullptr) return recover(segment);
    // Release: hand the lock back; the heap stays as it is.
    h.gc_lock.store(collector, std::memory_order_release);
    return absl::DataLossError(
        absl::StrCat(segment.Describe(), ": a collection (pid ", collector,
                     ") was left mid-way and this program links no recovery"));
  }
  // Nothing was changed, or the collection has ended: reopen the world if
  // it is still stopped.
  const uint32_t e = h.gc_epoch.load(std::memory_order_relaxed);
  if (e & 1) {
    // seq_cst: part of the Dekker handshake with sessions.
    h.gc_epoch.store(e + 1, std::memory_order_seq_cst);
    FutexWakeAll(&h.gc_epoch);
  }
  // Release: the next collector that takes the lock sees the new epoch.
  h.gc_lock.store(0, std::memory_order_release);
  return absl::OkStatus();
}

void DropWaits(const Segment& segment, SessionEntry& e) {
  // Relaxed: the owner is dead (or this process owns the entry and does not
  // wait yet), so nobody else writes `waiting`; the exchange makes a racing
  // reclaim (a joiner and the collector) subtract the share only once.
  const uint64_t share = e.waiting.exchange(0, std::memory_order_relaxed);
  if (share == 0) return;
  std::atomic<uint32_t>& waiters = segment.header().waiters;
  // Relaxed: lowering the count publishes nothing; a publisher that still
  // sees the old count only wakes nobody. Clamped at 0: a share larger than
  // the whole count only comes from a file from elsewhere, and a count that
  // wrapped below 0 would make every publish pay for a wake.
  uint32_t n = waiters.load(std::memory_order_relaxed);
  while (!waiters.compare_exchange_weak(
      n, n - static_cast<uint32_t>(std::min<uint64_t>(share, n)),
      std::memory_order_relaxed)) {
  }
}

void LocalSession::BeginWait() {
  // seq_cst: the waiter's half of the Dekker pairing with publishers
  // (hashtable/store.h, "Waiting"): in the single total order this
  // increment either precedes a publisher's seq_cst load of `waiters`
  // (which then wakes us) or follows its seq_cst publishing CAS (and our
  // check of the key, after a seq_cst fence, then sees the key).
  segment_->header().waiters.fetch_add(1, std::memory_order_seq_cst);
  // Relaxed: only this process writes its entry's share while it lives;
  // the seq_cst RMW above keeps this store after it (a kill between them
  // leaves the share one too small, never too large).
  entry_->waiting.fetch_add(1, std::memory_order_relaxed);
}

void LocalSession::EndWait() {
  // Relaxed: as in BeginWait; the release below keeps it first.
  entry_->waiting.fetch_sub(1, std::memory_order_relaxed);
  // Release: the share above is lowered before the count is (see BeginWait
  // for why that order). Lowering the count publishes nothing else.
  segment_->header().waiters.fetch_sub(1, std::memory_order_release);
}

void CloseChunk(const Segment& segment, SessionEntry& e) {
  // Relaxed loads/stores: the caller guarantees that no process allocates in
  // this entry (world stopped, or owner dead); the release/acquire edges of
  // the gc epoch and the owner CAS order them with everyone else.
  const uint64_t committed = e.committed.load(std::memory_order_relaxed);
  const uint64_t end = e.chunk_end.load(std::memory_order_relaxed);
  if (end > committed) {
    const uint64_t word = FillerWord(end - committed);
    std::memcpy(segment.base() + committed, &word, 8);
    segment.header().retired_counters[kBytesAllocated].fetch_add(
        end - committed, std::memory_order_relaxed);
  }
  e.chunk_start.store(0, std::memory_order_relaxed);
  e.chunk_end.store(0, std::memory_order_relaxed);
  e.committed.store(0, std::memory_order_release);
}

namespace {

// A session's leftovers when it leaves (or its owner died): its chunk is
// closed and its counters are folded into the header's, so stats() keeps
// them after the entry is reused. REQUIRES: in scope; nobody else
// allocates in `e`. Relaxed: statistics; the scope orders them with the
// collector.
void RetireEntry(const Segment& segment, SessionEntry& e) {
  CloseChunk(segment, e);
  Header& h = segment.header();
  for (int c = 0; c < kNumCounters; ++c) {
    const uint64_t v = e.counters[c].exchange(0, std::memory_order_relaxed);
    if (v) h.retired_counters[c].fetch_add(v, std::memory_order_relaxed);
  }
}

// Writes the header word of a record (a blob, or the filler before it) at
// `offset` in this session's chunk, above committed. The testing hook runs
// first, so a process killed there has written nothing of the record:
// committed, advanced only after every header below it is written, must
// not cover it yet.
void WriteRecordHeader(std::byte* base, uint64_t offset, uint64_t word) {
  RunTestingHook(TestingPoint::kRecordHeaderUnwritten);
  std::memcpy(base + offset, &word, 8);
}

// Maps a new chunk's pages into this process in one call, where the kernel
// can (MADV_POPULATE_WRITE, Linux 5.14): Back() has already allocated them
// (fallocate), so this takes no more memory, and it saves the page fault
// that the first write into each 4 KiB page would otherwise take (about a
// fifth of a fresh heap's small-add time, README "Issue 15"). Memory-backed
// heaps only: on a file heap a write fault dirties the page cache, which
// would write back zeros that nobody asked for. Best effort: an older
// kernel's EINVAL leaves the faults to happen on demand, as before.
void PopulateChunk(const Segment& segment, uint64_t offset, uint64_t length) {
#ifdef MADV_POPULATE_WRITE
  if (segment.backing() == BackingKind::kFile) return;
  (void)madvise(segment.base() + offset, length, MADV_POPULATE_WRITE);
#else
  (void)segment;
  (void)offset;
  (void)length;
#endif
}

// Whether CloseChunk may run on entry `e`: its open chunk, if any, ends at
// or below top and its committed top, where the filler goes, lies in
// [heap_start, end) and is 8-byte aligned. A dead owner's record may come
// from a file of unknown origin, so Join checks it before reclaiming.
bool ChunkRecordInHeap(const Segment& segment, const SessionEntry& e) {
  const Header& h = segment.header();
  // Relaxed: the owner is dead; its stores are all it will ever make.
  const uint64_t committed = e.committed.load(std::memory_order_relaxed);
  const uint64_t end = e.chunk_end.load(std::memory_order_relaxed);
  if (end <= committed) return true;  // CloseChunk writes nothing
  return committed >= h.heap_start && committed % 8 == 0 && end % 8 == 0 &&
         end <= h.top.load(std::memory_order_acquire);
}

}  // namespace

LocalSession::LocalSession(const Segment* segment, SessionEntry* entry,
                           int index)
    : segment_(segment),
      entry_(entry),
      index_(index),
      fork_generation_(ForkGeneration()) {}

absl::StatusOr<std::unique_ptr<LocalSession>> LocalSession::Join(
    const Segment* segment) {
  InstallForkHandler();
  Header& h = segment->header();
  SessionEntry* registry = segment->registry();
  const pid_t pid = getpid();
  const uint64_t start = ProcessStartTime(pid);
  // An entry of a dead owner whose chunk record lies outside the heap.
  int64_t corrupt_entry = -1;
  // Entries of dead owners left alone because their chunk claim is in
  // flight.
  uint32_t claims_in_flight = 0;
  // Two passes: a free entry first, then one whose owner died.
  for (int pass = 0; pass < 2; ++pass) {
    for (uint32_t i = 0; i < h.max_sessions; ++i) {
      SessionEntry& e = registry[i];
      // Acquire: see the previous owner's final stores before reusing.
      uint64_t owner = e.owner_pid.load(std::memory_order_acquire);
      if (pass == 0 ? owner != kSessionFree
                    : owner == kSessionFree || OwnerAlive(e, owner)) {
        continue;
      }
      // A dead owner with a chunk claim in flight: its record is what lets
      // the collector tell the claimed range apart, so the entry stays as it
      // is until a collection resolves the claim and frees it. Relaxed: the
      // owner is dead; its stores are all it will ever make.
      if (pass == 1 && e.claim_end.load(std::memory_order_relaxed) != 0) {
        ++claims_in_flight;
        continue;
      }
      // Reclaiming writes a filler at the dead owner's committed top: an
      // entry whose record points outside the heap (a corrupt file) is left
      // as it is, for Verify to report, rather than followed.
      if (pass == 1 && !ChunkRecordInHeap(*segment, e)) {
        corrupt_entry = i;
        continue;
      }
      // acq_rel: claim the entry; later stores to it follow the claim. The
      // claiming bit keeps others from judging us by the previous owner's
      // start time until ours is written.
      if (!e.owner_pid.compare_exchange_strong(owner,
                                               uint64_t(pid) | kSessionClaiming,
                                               std::memory_order_acq_rel)) {
        continue;
      }
      // seq_cst: a previous owner that died in scope left pinned set; the
      // collector polls it with seq_cst loads.
      e.pinned.store(0, std::memory_order_seq_cst);
      // A previous owner killed while waiting for a key left its waits in
      // Header::waiters: take them off, so publishes stop waking nobody.
      DropWaits(*segment, e);
      e.owner_start_time.store(start, std::memory_order_relaxed);
      // Release: whoever reads the pid reads the start time stored above.
      e.owner_pid.store(uint64_t(pid), std::memory_order_release);
      std::unique_ptr<LocalSession> s(new LocalSession(segment, &e, int(i)));
      if (pass == 1) {
        // The dead owner's leftovers: close its chunk and keep its counters
        // in the header, inside a scope so no collection runs meanwhile.
        absl::StatusOr<Pin> pin = s->Enter();
        if (!pin.ok()) {
          e.owner_pid.store(kSessionFree, std::memory_order_release);
          s->entry_ = nullptr;
          return pin.status();
        }
        RetireEntry(*segment, e);
        // Relaxed: a statistic read by Verify and reset by the collector.
        h.unclean_exits.fetch_add(1, std::memory_order_relaxed);
      } else {
        for (int c = 0; c < kNumCounters; ++c) {
          e.counters[c].store(0, std::memory_order_relaxed);
        }
        e.chunk_start.store(0, std::memory_order_relaxed);
        e.chunk_end.store(0, std::memory_order_relaxed);
        e.committed.store(0, std::memory_order_relaxed);
        e.claim_end.store(0, std::memory_order_relaxed);
      }
      return s;
    }
  }
  if (corrupt_entry >= 0) {
    return absl::DataLossError(
        absl::StrCat(segment->Describe(),
                     ": no free session entry, and session ", corrupt_entry,
                     " of a dead process has a chunk record outside the heap"));
  }
  if (claims_in_flight > 0) {
    return absl::ResourceExhaustedError(absl::StrCat(
        segment->Describe(), ": all ", h.max_sessions, " sessions are held; ",
        claims_in_flight,
        " of them by dead processes whose chunk claims wait for a collection "
        "to resolve them (Collect frees those entries)"));
  }
  return absl::ResourceExhaustedError(
      absl::StrCat(segment->Describe(), ": all ", h.max_sessions,
                   " sessions are held by live processes (max_sessions)"));
}

LocalSession::~LocalSession() {
  if (entry_ == nullptr) return;
  {
    absl::StatusOr<Pin> pin = Enter();
    if (pin.ok()) {
      std::lock_guard<std::mutex> lock(alloc_mu_);
      RetireEntry(*segment_, *entry_);
    }
  }
  // Release: a later joiner that acquires the free entry sees it closed.
  entry_->owner_pid.store(kSessionFree, std::memory_order_release);
}

absl::StatusOr<Pin> LocalSession::Enter() {
  int64_t n = pins_.load(std::memory_order_acquire);
  while (n > 0) {
    // Fast path: the process is in scope already; nothing shared is touched.
    // Acquire on success: the scope was established before pins_ became > 0.
    if (pins_.compare_exchange_weak(n, n + 1, std::memory_order_acquire)) {
      return Pin::Adopt(this);
    }
  }
  std::lock_guard<std::mutex> lock(pin_mu_);
  n = pins_.load(std::memory_order_acquire);
  if (n == 0) {
    if (absl::Status s = EnterShared(); !s.ok()) return s;
  }
  // Release: other threads that see pins_ > 0 see the established scope.
  pins_.fetch_add(1, std::memory_order_release);
  return Pin::Adopt(this);
}

absl::Status LocalSession::EnterShared() {
  Header& h = segment_->header();
  for (;;) {
    if (absl::Status s = CheckCollectorAlive(*segment_); !s.ok()) return s;
    // seq_cst: Dekker's pattern with the collector (see the header).
    const uint32_t epoch = h.gc_epoch.load(std::memory_order_seq_cst);
    if ((epoch & 1) == 0) {
      // A collector that makes the epoch odd from here until pinned is set
      // finds this session out of scope and stops the world without it:
      // the second load of the epoch, after the pin, is what sees it.
      RunTestingHook(TestingPoint::kScopeEpochRead);
      entry_->pinned.store(1, std::memory_order_seq_cst);
      if (h.gc_epoch.load(std::memory_order_seq_cst) == epoch) {
        if (h.phase.load(std::memory_order_acquire) == kPhaseDamaged) {
          entry_->pinned.store(0, std::memory_order_seq_cst);
          return absl::DataLossError(absl::StrCat(
              segment_->Describe(),
              ": a collection found the heap damaged; its contents cannot "
              "be trusted"));
        }
        return absl::OkStatus();
      }
      entry_->pinned.store(0, std::memory_order_seq_cst);
      continue;
    }
    // A collection runs: sleep until the epoch turns even, waking now and
    // then to check that its collector is still alive.
    RunTestingHook(TestingPoint::kScopeWait);
    FutexWait(&h.gc_epoch, epoch, 100);
  }
}

void LocalSession::LeaveShared() {
  // seq_cst: the collector polls pinned with seq_cst loads; every write made
  // inside the scope happens before this store.
  entry_->pinned.store(0, std::memory_order_seq_cst);
}

void LocalSession::AddPin() noexcept {
  if (fork_generation_ != ForkGeneration()) return;  // see DropPin
  // Relaxed: the caller already holds a pin, so the scope is established.
  pins_.fetch_add(1, std::memory_order_relaxed);
}

void LocalSession::DropPin() noexcept {
  // A pin inherited across fork belongs to the parent's session: dropping it
  // in the child must not touch the parent's shared scope flag.
  if (fork_generation_ != ForkGeneration()) return;
  int64_t n = pins_.load(std::memory_order_acquire);
  while (n > 1) {
    // Release: this thread's reads of pinned data happen before the count
    // drops (and so before the last unpin that lets a collector in).
    if (pins_.compare_exchange_weak(n, n - 1, std::memory_order_release)) {
      return;
    }
  }
  std::lock_guard<std::mutex> lock(pin_mu_);
  if (pins_.fetch_sub(1, std::memory_order_acq_rel) == 1) LeaveShared();
}

absl::StatusOr<uint64_t> LocalSession::AllocateLocked(uint64_t header_word,
                                                      uint64_t bytes,
                                                      uint64_t align) {
  Header& h = segment_->header();
  // Relaxed: only this process writes its chunk fields while it is pinned
  // (the collector writes them with the world stopped, ordered by the epoch).
  uint64_t committed = entry_->committed.load(std::memory_order_relaxed);
  uint64_t end = entry_->chunk_end.load(std::memory_order_relaxed);
  uint64_t start = AlignUp(committed, align);
  if (end == 0 || start + bytes > end) {
    // Retire this chunk, then take one that fits (blobs larger than a chunk
    // get a chunk of their own).
    const uint64_t size =
        std::max<uint64_t>(h.chunk_bytes, AlignUp(bytes + align, kPageSize));
    uint64_t top = h.top.load(std::memory_order_acquire);
    for (;;) {
      if (size > h.heap_limit - top) {
        entry_->claim_end.store(0, std::memory_order_relaxed);
        return absl::ResourceExhaustedError(absl::StrCat(
            segment_->Describe(), " is full: ", bytes, " bytes wanted, top ",
            top - h.heap_start, " of ", h.heap_limit - h.heap_start,
            " heap bytes (collect, or create a "
            "larger heap)"));
      }
      // Back the range before claiming it, so a failure leaves the heap
      // unchanged (backing a range twice is harmless). The part below
      // reuse_end is backed and zeroed already (pages the last collection
      // kept): no fallocate, and no memory-floor check, since it takes no
      // new memory. Relaxed: only a collector writes reuse_end, with the
      // world stopped; this session is in scope.
      uint64_t reused =
          std::min(h.reuse_end.load(std::memory_order_relaxed), top + size);
      if (reused > top) {
        // A heap file of unknown origin may claim more than it holds: a
        // write past the object's end would be a SIGBUS, so trust the
        // record only below it (the collector never records more).
        absl::StatusOr<uint64_t> backed = segment_->BackedBytes();
        if (!backed.ok() || *backed < reused) reused = top;
      }
      const uint64_t back_from = std::max(top, reused);
      if (absl::Status s = segment_->Back(back_from, top + size - back_from);
          !s.ok()) {
        entry_->claim_end.store(0, std::memory_order_relaxed);
        return s;
      }
      // Record the claim before making it (relaxed: the release half of the
      // CAS below publishes these stores with the claim). If we die after
      // the CAS and before the chunk is recorded, this record is all that
      // describes the range.
      entry_->claim_start.store(top, std::memory_order_relaxed);
      entry_->claim_end.store(top + size, std::memory_order_relaxed);
      // acq_rel: the claim orders after the backing of the range and the
      // claim record.
      if (h.top.compare_exchange_weak(top, top + size,
                                      std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        // Claimed: from here until the chunk is recorded, the claim record
        // is all that describes [top, top + size).
        RunTestingHook(TestingPoint::kTopAdvanced);
        break;
      }
    }
    RunTestingHook(TestingPoint::kChunkClaimed);
    if (end != 0) CloseChunk(*segment_, *entry_);
    // chunk_end last: a nonzero end is what makes walkers read the record
    // (heap/walk.cc loads it first, with acquire), so a kill between these
    // stores leaves either no record (the claim record above still
    // describes the range) or a whole one, never an end with a stale
    // committed of 0. Release: pairs with the walkers' acquire load.
    entry_->chunk_start.store(top, std::memory_order_relaxed);
    entry_->committed.store(top, std::memory_order_relaxed);
    entry_->chunk_end.store(top + size, std::memory_order_release);
    // Relaxed: the chunk record above now describes the range; walkers run
    // only while no process allocates (world stopped, or no writers).
    entry_->claim_end.store(0, std::memory_order_relaxed);
    committed = top;
    end = top + size;
    start = AlignUp(top, align);
    // Regular chunks only: a blob's own chunk may be very large, and its
    // faults are better taken by its writer outside this lock.
    if (size == h.chunk_bytes) PopulateChunk(*segment_, top, size);
  }
  std::byte* base = segment_->base();
  if (start > committed) {
    WriteRecordHeader(base, committed, FillerWord(start - committed));
  }
  WriteRecordHeader(base, start, header_word);
  CountLocked(kBytesAllocated, start + bytes - committed);
  // Release: anyone who reads committed (a joiner reclaiming this entry
  // after we die, Verify) sees the header words below it.
  entry_->committed.store(start + bytes, std::memory_order_release);
  return start;
}

}  // namespace shmheap::internal
