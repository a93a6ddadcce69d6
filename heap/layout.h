// The shared layout of a segment: a versioned ABI.
//
//   offset 0            Header (one 4 KiB page)
//   registry_offset     SessionEntry[max_sessions]   (192 bytes each)
//   table_areas_offset  table area 0: room for Slot[1 << max_table_slots_log2]
//   + TableAreaBytes()  table area 1: as much room again
//   dep_offset          the dependency table: 2^dep_slots_log2 slots of 8
//                       bytes (hashtable/deps.h), in whole pages; absent
//                       (and dep_offset 0) when dep_slots_log2 is 0
//   heap_start          chunks of blobs, bump-allocated up to heap_limit
//
// The live table is Slot[1 << TableSlotsLog2(table)] at the start of area
// TableArea(table) (Header::table, one word); the other area is unused and
// reads as zero, and neither is backed beyond the live table's slots. A
// collection grows the table by filling the other area with a table twice as
// large (or more) and then storing Header::table once (gc/grow.h).
//
// Every struct here lives in shared memory and is read by processes that may
// be running another build of the library. So:
//  - the format word packs the version and the size and alignment of every
//    shared struct; a segment whose word differs from ours is refused;
//  - every field's offset is static_asserted below;
//  - every atomic is std::atomic<uint64_t> or <uint32_t>, asserted to be
//    always lock free (a lock inside a shared atomic would be process-local).
//
// Writers: the creator fills the plain (non-atomic) geometry fields before any
// other process can map the segment; after that they are read-only. Atomic
// fields document their memory order at each access site.

#ifndef SHMHEAP_HEAP_LAYOUT_H_
#define SHMHEAP_HEAP_LAYOUT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shmheap::internal {

inline constexpr uint64_t kMagic = 0x5041'4548'4d48'5300;  // "\0SHMHEAP" LE
// 2: SessionEntry records its pending chunk claim; Header counts unclean
// exits. 3: a slot's addr word carries a key tag above the offset. 4: the
// header records a collection's progress, so a dead collector's work is
// rolled forward (phases 2..6). 5: no threading phase (the slide finds each
// blob's slot by its key hash, blobs and slots keep their words until the
// blob moves), and freed pages below Header::reuse_end stay backed and
// zeroed for reuse (gc/collector.h). 6: the table grows: two
// table areas of the largest size, the live one and its size named by
// Header::table, and the growth phase (7) with its record (Header::gc_grow).
inline constexpr uint64_t kFormatVersion = 6;
inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kCacheLine = 64;

// Header.phase values: where a collection is (gc/collector.h, "Recovery").
// A collector that dies in any phase but kPhaseDamaged is rolled forward by
// the next process that enters the heap or collects.
inline constexpr uint32_t kPhaseIdle = 0;
// 1 was "compacting" in format 2, whose collections could not be resumed.
inline constexpr uint32_t kPhaseClosing = 2;  // closing chunks and claims
// 3 was "threading" in format 4: the slide of format 5 needs none.
inline constexpr uint32_t kPhaseThreading = 3;
inline constexpr uint32_t kPhaseSliding = 4;    // live blobs moving down
inline constexpr uint32_t kPhaseFinishing = 5;  // new top, tail, tombstones
// The heap did not parse during a collection: it is damaged, and nothing can
// roll the collection forward (kDataLoss).
inline constexpr uint32_t kPhaseDamaged = 6;
// The table is being rehashed into the other table area (gc/grow.h); the
// compaction before it is complete.
inline constexpr uint32_t kPhaseGrowing = 7;
// Heap::Clear is emptying the heap (gc/clear.h): redone from its first step
// by whoever rolls it forward, from gc_old_top and gc_keep_end. Format 6
// files never hold it unless written by a build that has Clear; an older
// build refuses to roll it forward (an unknown phase is damage).
inline constexpr uint32_t kPhaseClearing = 8;

// Header.flags bits.
inline constexpr uint32_t kFlagKeepKeys = 1;
inline constexpr uint32_t kFlagAnonymous = 2;
// Blobs carry a payload checksum (Options::checksums, heap/blob.h).
inline constexpr uint32_t kFlagChecksums = 4;

struct Header {
  // --- Identity and geometry: written once by the creator, then read-only.
  uint64_t magic;
  uint64_t format;       // FormatWord()
  uint64_t total_bytes;  // length of the mapping
  uint64_t registry_offset;
  uint64_t table_areas_offset;  // area 0; area 1 is TableAreaBytes() above
  uint64_t heap_start;
  uint64_t heap_limit;           // == total_bytes
  uint64_t seed;                 // XXH3 seed for key hashing
  uint64_t chunk_bytes;          // allocation chunk size
  uint64_t min_available_bytes;  // memory floor checked before each chunk
  uint64_t created_unix_ns;
  uint32_t max_sessions;
  uint32_t max_table_slots_log2;  // each table area holds this many slots
  uint32_t flags;                 // kFlag*
  uint32_t owner_uid;
  int32_t owner_pid;
  // The dependency table (hashtable/deps.h) has 2^dep_slots_log2 slots of 8
  // bytes at dep_offset, below heap_start. 0: the heap has none (so a heap
  // made by a build that predates it, where this was reserved and reads 0,
  // has none; the format is unchanged).
  uint32_t dep_slots_log2;
  // A saved image's XXH3-64 of its whole file, this field read as 0
  // (tools/image.h); 0 for a live heap. Attaching to a file clears it,
  // since the file is then live and changes.
  std::atomic<uint64_t> image_checksum;
  // The live table: TableWord(area, slots_log2). Written only by a
  // collection, with the world stopped, in one release store (the growth's
  // commit point, gc/grow.h); read by every scope when it begins and by the
  // seqlock read of Contains (hashtable/store.h).
  std::atomic<uint64_t> table;
  // Cancellation (Heap::RequestStop): nonzero while a stop is requested.
  // Written rarely (the master), polled by every worker, so it sits on a
  // line nothing hot writes. Taken from reserved space: it is 0 in files of
  // builds that predate it, which means "no stop", so the format is
  // unchanged.
  std::atomic<uint32_t> stop;
  // Waiting for a key (Store::WaitFor; hashtable/store.h, "Waiting"). Both
  // come from reserved space and read as 0 in older files, which means
  // nobody waits. publish_seq is the futex word waiters sleep on: a
  // publisher that finds waiters != 0 increments it and wakes them all.
  // waiters counts the threads (of any process) between announcing a wait
  // and leaving it; a waiter killed while asleep is taken off by whoever
  // reclaims its session (SessionEntry::waiting). Both are touched only
  // when somebody waits: a publish with no waiter only loads `waiters`.
  std::atomic<uint32_t> publish_seq;
  std::atomic<uint32_t> waiters;
  uint8_t reserved1[4];
  // Where the dependency table starts (0 when dep_slots_log2 is 0). Taken
  // from reserved space, like dep_slots_log2.
  uint64_t dep_offset;

  // --- Allocation: the global bump pointer (its own cache line, since every
  // chunk allocation of every process CASes it).
  alignas(kCacheLine) std::atomic<uint64_t> top;
  // The end of the pages that the last collection kept for reuse: every
  // byte in [top, reuse_end) is backed (fallocated) and reads as zero, so a
  // chunk claimed there needs no fallocate and no memory-floor check, and
  // its first write faults on no page. Written only by the collector with
  // the world stopped (so sessions, in scope, read it relaxed); at or below
  // top it says nothing. 0 in a new heap and in a loaded image.
  std::atomic<uint64_t> reuse_end;

  // --- Collector state (its own cache line: sessions read it on every first
  // pin).
  // Even: no collection; odd: a collection is stopping or has stopped the
  // world. Sessions futex-wait on it (so it is 32 bits).
  alignas(kCacheLine) std::atomic<uint32_t> gc_epoch;
  std::atomic<uint32_t> phase;    // kPhase*
  std::atomic<uint32_t> gc_lock;  // pid of the running collector, or 0
  // Sessions whose process died and whose entry another process reclaimed
  // since the last collection. A process killed between a table CAS and its
  // counter update leaves the counters off by that one operation, so Verify
  // checks counters only while this is 0; the collector recounts exactly
  // and resets it.
  std::atomic<uint32_t> unclean_exits;
  std::atomic<uint64_t> collections;  // completed collections

  // --- Counters folded in from sessions that have left (see SessionEntry).
  alignas(kCacheLine) std::atomic<uint64_t> retired_counters[8];

  // --- The collection's progress record (gc/collector.h, "Recovery"):
  // written only by the process holding gc_lock, with the world stopped;
  // read by the process that rolls a dead collector's work forward. Every
  // store to it is a release store, so no later write of the collector is
  // made before the record that describes it.
  // Each phase has fields of its own, so that a phase can set up the next
  // one's record before it enters it, and a death in between leaves both
  // records whole.
  alignas(kCacheLine) std::atomic<uint64_t> gc_old_top;  // top at the start
  // Sliding: the slots that hold a blob, counted when the chunks are
  // closed; the slide must find exactly that many live blobs.
  std::atomic<uint64_t> gc_live_slots;
  // Finishing: the end of the freed range kept backed and zeroed for reuse
  // (the new reuse_end); the pages above it go back to the OS. Recorded
  // with the new top, before the phase starts, so a resumed finish keeps
  // exactly what the dead collector chose.
  std::atomic<uint64_t> gc_keep_end;
  // Sliding: the next record to visit, and where the next live blob goes.
  std::atomic<uint64_t> gc_slide_pos;
  std::atomic<uint64_t> gc_slide_dest;
  // Finishing: the hole + 1 of the tombstone cascade in progress (0: none).
  std::atomic<uint64_t> gc_hole;
  // Sliding: how many slots past its home a key's slot may lie (the
  // longest displacement in the table, plus one), which bounds the search
  // for a blob's slot; and the live blobs found and moved so far.
  std::atomic<uint64_t> gc_probe_limit;
  std::atomic<uint64_t> gc_slide_found;
  // Sliding: the blob being moved, while gc_move_slot has kMoveActive: its
  // position and the slide's destination before it, its destination,
  // header word, bytes copied so far, and kMoveActive | tag << 32 | slot.
  alignas(kCacheLine) std::atomic<uint64_t> gc_move_pos;
  std::atomic<uint64_t> gc_move_dest;
  std::atomic<uint64_t> gc_move_to;
  std::atomic<uint64_t> gc_move_header;
  std::atomic<uint64_t> gc_move_done;
  std::atomic<uint64_t> gc_move_slot;
  // gc_slide_found once this move is done (so that redoing it counts once).
  std::atomic<uint64_t> gc_move_found;
  // Growing: the Header::table word the growth installs (0: none).
  std::atomic<uint64_t> gc_grow;
};

// Header::table: the live table area (0 or 1) and its size.
constexpr uint64_t TableWord(uint32_t area, uint32_t slots_log2) {
  return uint64_t{area} << 32 | slots_log2;
}
constexpr uint32_t TableArea(uint64_t word) {
  return static_cast<uint32_t>(word >> 32);
}
constexpr uint32_t TableSlotsLog2(uint64_t word) {
  return static_cast<uint32_t>(word);
}

// Header::gc_move_slot: a move is recorded.
inline constexpr uint64_t kMoveActive = uint64_t{1} << 63;

// Per-session counters, each written only by its own session (so no two
// processes ever write the same cache line on the hot path). Stats are the
// sum over all entries plus Header::retired_counters.
//
// Derived figures: live blobs = published - unlinked; live bytes likewise;
// heap bytes in use = allocated - collected; dead bytes = in use - live.
enum Counter : int {
  kSlotsClaimed = 0,  // slots whose hash this session set (0 -> h)
  kBlobsPublished,    // addr CAS 0/old -> blob won
  kBlobsUnlinked,     // addr CAS blob -> 0/new won (remove, replace, move)
  kBytesPublished,    // bytes of blobs this session published
  kBytesUnlinked,     // bytes of blobs this session unlinked
  kBytesAllocated,    // heap bytes this session closed: blobs and fillers
  // The collector restarts every counter from exact figures (gc/), so these
  // two stay 0; kept so that the counter array keeps its ABI.
  kTombstonesCleared,
  kBytesCollected,
  kNumCounters
};

// Session states. owner_pid is 0 (free), pid | kSessionClaiming while a
// joiner writes the owner's start time, then pid (published with release, so
// whoever reads the pid also reads the matching start time).
inline constexpr uint64_t kSessionFree = 0;
inline constexpr uint64_t kSessionClaiming = uint64_t{1} << 63;

struct alignas(kCacheLine) SessionEntry {
  // --- Line 1: identity and scope, the line the collector polls.
  // pid of the owning process; 0 = free. Claimed by CAS 0 -> pid.
  std::atomic<uint64_t> owner_pid;
  // Process start time (clock ticks since boot, /proc/PID/stat field 22):
  // with the pid it identifies the process, so a reused pid is not mistaken
  // for the owner.
  std::atomic<uint64_t> owner_start_time;
  // Nonzero while the session is inside a scope (holds a pin).
  std::atomic<uint64_t> pinned;
  // A chunk claim in flight: [claim_start, claim_end) is stored before the
  // CAS on Header::top and cleared once the chunk is recorded below. A
  // process killed between the CAS and the recording leaves a claimed range
  // that nothing describes (it is still zero); the heap walk recognises it
  // by this record (see heap/walk.h, ClaimedGapEnd). claim_end == 0: none.
  std::atomic<uint64_t> claim_start;
  std::atomic<uint64_t> claim_end;
  // The threads of this session that are waiting for a key, that is, its
  // share of Header::waiters (hashtable/store.h, "Waiting"): whoever
  // reclaims the entry of a dead owner subtracts it from Header::waiters
  // (DropWaits, heap/session.h). 0 in older files, as nobody waited there.
  std::atomic<uint64_t> waiting;
  uint8_t reserved0[16];

  // --- Line 2: allocation and counters, written only by the owner.
  // Current chunk [chunk_start, chunk_end); committed is the end of the last
  // blob whose header is written (release), so [chunk_start, committed)
  // parses and [committed, chunk_end) is untouched.
  alignas(kCacheLine) std::atomic<uint64_t> chunk_start;
  std::atomic<uint64_t> chunk_end;
  std::atomic<uint64_t> committed;
  uint64_t reserved1;
  std::atomic<uint64_t> counters[kNumCounters];
};

// A hash-table slot. hash 0 = empty; hash != 0 and addr 0 = tombstone (or an
// add between claim and publication); addr != 0 = the blob's address word:
//
//   bits 0..47   the blob's offset in the segment (a multiple of 8, never 0)
//   bits 48..63  the key tag: 16 bits of a second hash of the key's bytes,
//                independent of `hash` (0 when the blob stores no key)
//
// The tag lets Contains tell two keys with the same 64-bit hash apart
// without reading the blob (hashtable/store.h has the probability argument).
// The offset and the tag change together, in the one CAS that publishes.
struct Slot {
  std::atomic<uint64_t> hash;
  std::atomic<uint64_t> addr;
};

// The bytes of one table area: room for 2^max_slots_log2 slots, in whole
// pages (so each area can be backed and released on its own).
constexpr uint64_t TableAreaBytes(uint32_t max_slots_log2) {
  return ((uint64_t{1} << max_slots_log2) * 16 + kPageSize - 1) &
         ~(kPageSize - 1);
}

// The bytes of the dependency table's area: 2^slots_log2 slots of 8 bytes
// (hashtable/deps.h) in whole pages; none for slots_log2 0 (no table).
constexpr uint64_t DepAreaBytes(uint32_t slots_log2) {
  return slots_log2 == 0 ? 0
                         : ((uint64_t{1} << slots_log2) * 8 + kPageSize - 1) &
                               ~(kPageSize - 1);
}

// Blob offsets fit in the low 48 bits of an address word: a segment is
// smaller than 2^48 bytes (heap/segment.cc refuses larger ones; x86-64 and
// AArch64 user address spaces are smaller still).
inline constexpr int kAddrTagShift = 48;
inline constexpr uint64_t kMaxSegmentBytes = uint64_t{1} << kAddrTagShift;
inline constexpr uint64_t kAddrOffsetMask = kMaxSegmentBytes - 1;
constexpr uint64_t AddrWord(uint64_t offset, uint16_t tag) {
  return offset | (uint64_t{tag} << kAddrTagShift);
}
constexpr uint64_t AddrOffset(uint64_t word) { return word & kAddrOffsetMask; }
constexpr uint16_t AddrTag(uint64_t word) {
  return static_cast<uint16_t>(word >> kAddrTagShift);
}

static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "shared atomics must not hide a process-local lock");
static_assert(std::atomic<uint32_t>::is_always_lock_free,
              "shared atomics must not hide a process-local lock");
static_assert(sizeof(std::atomic<uint64_t>) == 8 &&
                  sizeof(std::atomic<uint32_t>) == 4,
              "atomics must have the size of the word they wrap");

static_assert(offsetof(Header, magic) == 0);
static_assert(offsetof(Header, format) == 8);
static_assert(offsetof(Header, total_bytes) == 16);
static_assert(offsetof(Header, seed) == 56);
static_assert(offsetof(Header, max_sessions) == 88);
static_assert(offsetof(Header, owner_uid) == 100);
static_assert(offsetof(Header, dep_slots_log2) == 108);
static_assert(offsetof(Header, image_checksum) == 112);
static_assert(offsetof(Header, table) == 120);
static_assert(offsetof(Header, stop) == 128);
static_assert(offsetof(Header, publish_seq) == 132);
static_assert(offsetof(Header, waiters) == 136);
static_assert(offsetof(Header, reserved1) == 140 &&
              sizeof(Header::reserved1) == 4);
static_assert(offsetof(Header, dep_offset) == 144);
static_assert(offsetof(Header, top) == 192);
static_assert(offsetof(Header, reuse_end) == 200);
static_assert(offsetof(Header, gc_epoch) == 256);
static_assert(offsetof(Header, collections) == 272);
static_assert(offsetof(Header, retired_counters) == 320);
static_assert(offsetof(Header, gc_old_top) == 384);
static_assert(offsetof(Header, gc_live_slots) == 392);
static_assert(offsetof(Header, gc_keep_end) == 400);
static_assert(offsetof(Header, gc_hole) == 424);
static_assert(offsetof(Header, gc_move_pos) == 448);
static_assert(offsetof(Header, gc_probe_limit) == 432);
static_assert(offsetof(Header, gc_slide_found) == 440);
static_assert(offsetof(Header, gc_move_slot) == 488);
static_assert(offsetof(Header, gc_move_found) == 496);
static_assert(offsetof(Header, gc_grow) == 504);
static_assert(sizeof(Header) == 512 && sizeof(Header) <= kPageSize,
              "the header fits its page");
static_assert(offsetof(SessionEntry, pinned) == 16);
static_assert(offsetof(SessionEntry, claim_end) == 32);
static_assert(offsetof(SessionEntry, waiting) == 40);
static_assert(offsetof(SessionEntry, reserved0) == 48);
static_assert(offsetof(SessionEntry, chunk_start) == 64);
static_assert(offsetof(SessionEntry, counters) == 96);
static_assert(sizeof(SessionEntry) == 192);
static_assert(sizeof(Slot) == 16 && alignof(Slot) == 8,
              "16-byte slots, as the table's geometry assumes");

// Packs the version with the size and alignment of each shared struct, so a
// build whose layout differs refuses the segment instead of misreading it.
constexpr uint64_t FormatWord() {
  return (kFormatVersion << 48) | (uint64_t{sizeof(Header)} << 32) |
         (uint64_t{sizeof(SessionEntry)} << 20) |
         (uint64_t{alignof(SessionEntry)} << 12) |
         (uint64_t{sizeof(Slot)} << 4) | uint64_t{alignof(Slot) / 8};
}

}  // namespace shmheap::internal

#endif  // SHMHEAP_HEAP_LAYOUT_H_
