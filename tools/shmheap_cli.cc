// shmheap: the command-line tool for named heaps in /dev/shm.
//
//   shmheap create NAME [--heap SIZE] [--slots N]
//   shmheap ls [--all]
//   shmheap stats NAME [--json]
//   shmheap verify NAME
//   shmheap gc NAME [--deadline-ms MS]
//   shmheap clear NAME [--deadline-ms MS]
//   shmheap get NAME KEY [-n N]
//   shmheap wait NAME KEY [--timeout SECONDS]
//   shmheap save NAME FILE [--deadline-ms MS]
//   shmheap load FILE NAME
//   shmheap rm NAME [--force]
//
// Every command that names a heap attaches to it through the library
// (Heap::OpenNamed), so it sees exactly what a program would: the same
// validation, the same errors, and while it runs it is one more session of
// the heap. `ls` and `rm` only read a segment's header page, so they work on
// heaps that do not attach (another format version, a damaged heap) and
// never touch files in /dev/shm that are not heaps.
//
// Output goes to stdout. An error is one line on stderr,
// "shmheap: COMMAND: message" (the library's messages name the heap, the
// key and the numbers), and the exit status says what kind it was: 1 the
// operation failed (including bad heap names and missing heaps), 2 the
// command line could not be parsed. --help (or -h) after any command, or
// alone, prints the usage to stdout and exits 0.
//
// Paths: every heap name and file is opened without blocking and refused,
// with one line saying what it is, unless it is a regular file (a FIFO, a
// directory, a device; a symbolic link in /dev/shm), so no command hangs on
// a FIFO planted in /dev/shm or given as FILE.
//
// Signals: SIGHUP, SIGINT and SIGTERM never interrupt a collection or leave
// a half-written file. create, gc, clear, save and load hold them back while
// they work (SignalGuard) and act on one at the next safe point: a collection
// runs to its end, a copy is abandoned (save writes no FILE, load creates
// no NAME; both build their output unnamed, so even SIGKILL leaves none).
// The command then prints one line, "shmheap: COMMAND: SIGINT: what
// happened", and dies by that same signal, so the shell reports 128 + N
// (130 for SIGINT, 143 for SIGTERM) and a script running it stops as for
// any other program. The other commands only read, or attach as a session,
// which a killed process may do at any instruction: signals kill them as
// usual. wait holds them back too, so that it never dies counted among the
// heap's waiters: it waits in slices and stops between two.

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/session.h"
#include "heap/strings.h"
#include "shmheap.h"
#include "tools/image.h"

namespace shmheap::cli {
namespace {

using internal::Sv;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

using internal::kShmDir;

// ---------------------------------------------------------------------------
// Command table and argument parsing.

struct FlagSpec {
  std::string_view name;        // "--heap"
  std::string_view value_name;  // "SIZE"; empty for a switch
};

struct Invocation;
using Handler = int (*)(const Invocation&);

struct Command {
  std::string_view name;
  std::string_view synopsis;  // arguments, as in the usage line
  std::string_view summary;   // one line, for the command list
  std::string_view help;      // the details, for COMMAND --help
  std::vector<FlagSpec> flags;
  size_t min_args;
  size_t max_args;
  Handler run;
};

struct Invocation {
  const Command* command = nullptr;
  std::vector<std::string> args;
  std::map<std::string, std::string, std::less<>> flags;  // switches map to ""

  bool Has(std::string_view flag) const { return flags.count(flag) != 0; }
  const std::string* Value(std::string_view flag) const {
    auto it = flags.find(flag);
    return it == flags.end() ? nullptr : &it->second;
  }
};

// One line per error is part of the CLI's contract; the library's messages
// are single lines already, and this keeps it so for anything else (a file
// name, say).
std::string OneLine(absl::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

int Fail(std::string_view command, absl::string_view message) {
  std::fprintf(stderr, "shmheap: %s: %s\n", std::string(command).c_str(),
               OneLine(message).c_str());
  return kExitFailed;
}
int Fail(const Invocation& inv, const absl::Status& status) {
  return Fail(inv.command->name, status.message());
}

int UsageError(std::string_view command, absl::string_view message) {
  const std::string where =
      command.empty() ? "shmheap" : absl::StrCat("shmheap ", Sv(command));
  std::fprintf(stderr, "shmheap: %s%s (see %s --help)\n",
               command.empty() ? "" : absl::StrCat(Sv(command), ": ").c_str(),
               OneLine(message).c_str(), where.c_str());
  return kExitUsage;
}

// ---------------------------------------------------------------------------
// Signals (see the file comment).

constexpr int kStopSignals[] = {SIGHUP, SIGINT, SIGTERM};

const char* SignalName(int sig) {
  switch (sig) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
  }
  return "signal";
}

// Holds SIGHUP, SIGINT and SIGTERM back (blocked, so they stay pending)
// while it lives, except those the caller ignores (nohup, a background
// job), which stay ignored. Only one thread runs, so the thread's mask is
// the process's.
class SignalGuard {
 public:
  SignalGuard() {
    sigemptyset(&held_);
    for (int sig : kStopSignals) {
      struct sigaction action;
      if (sigaction(sig, nullptr, &action) == 0 &&
          action.sa_handler == SIG_IGN) {
        continue;
      }
      sigaddset(&held_, sig);
    }
    pthread_sigmask(SIG_BLOCK, &held_, &previous_);
  }
  // A signal that arrives after the last StopIfPending is delivered here,
  // once the work is done: output is flushed first.
  ~SignalGuard() {
    std::fflush(stdout);
    std::fflush(stderr);
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

  // The first held signal that is pending, or 0.
  int Pending() const {
    sigset_t pending;
    if (sigpending(&pending) != 0) return 0;
    for (int sig : kStopSignals) {
      if (sigismember(&held_, sig) == 1 && sigismember(&pending, sig) == 1) {
        return sig;
      }
    }
    return 0;
  }

  // With a held signal pending: prints "shmheap: COMMAND: SIG...: `what`"
  // and ends the process by that signal. Returns otherwise.
  void StopIfPending(std::string_view command, absl::string_view what) const {
    const int sig = Pending();
    if (sig == 0) return;
    std::fflush(stdout);
    std::fprintf(stderr, "shmheap: %s: %s: %s\n", std::string(command).c_str(),
                 SignalName(sig), OneLine(what).c_str());
    std::fflush(stderr);
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    // The pending signal is delivered as this returns, and its default
    // action ends the process.
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    _exit(128 + sig);  // not reached
  }

  // For SaveImage and LoadImage: stop at the next safe point.
  tools::CancelCheck AsCancelCheck() const {
    return [this] { return Pending() != 0; };
  }

 private:
  sigset_t held_;
  sigset_t previous_;
};

// ---------------------------------------------------------------------------
// Numbers and sizes.

// "4096", "64K", "512M", "1G", "2T": K, M, G and T are powers of 1024.
absl::StatusOr<uint64_t> ParseSize(std::string_view flag, std::string_view s) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid size \"", absl::CHexEscape(Sv(s)), "\" for ", Sv(flag),
        ": digits with an optional K, M, G or T suffix (powers of 1024)"));
  };
  int shift = 0;
  std::string_view digits = s;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      case 'T':
      case 't':
        shift = 40;
        break;
    }
    if (shift != 0) digits.remove_suffix(1);
  }
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) {
        return c >= '0' && c <= '9';
      })) {
    return bad();
  }
  uint64_t v = 0;
  if (!absl::SimpleAtoi(Sv(digits), &v) || v > (UINT64_MAX >> shift)) {
    return absl::InvalidArgumentError(
        absl::StrCat("size \"", absl::CHexEscape(Sv(s)), "\" for ", Sv(flag),
                     " is too large"));
  }
  return v << shift;
}

// "1.5 MiB": for people; the exact byte counts are printed next to it.
std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

std::string BytesField(uint64_t bytes) {
  return absl::StrCat(bytes, " (", HumanBytes(bytes), ")");
}

// ---------------------------------------------------------------------------
// Opening heaps.

absl::StatusOr<Heap> Open(const Invocation& inv, size_t arg) {
  return Heap::OpenNamed(inv.args[arg]);
}

// The first 8 bytes of the object `fd`, or nullopt when it is shorter.
std::optional<uint64_t> ReadMagic(int fd) {
  uint64_t magic = 0;
  if (pread(fd, &magic, sizeof magic, 0) != sizeof magic) return std::nullopt;
  return magic;
}

std::string UserName(uid_t uid) {
  struct passwd pw;
  struct passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return absl::StrCat(uid);
}

// ---------------------------------------------------------------------------
// create

int RunCreate(const Invocation& inv) {
  Options options;
  if (const std::string* v = inv.Value("--heap")) {
    absl::StatusOr<uint64_t> bytes = ParseSize("--heap", *v);
    if (!bytes.ok()) return UsageError("create", bytes.status().message());
    // The library's range (heap/segment.h), reported as --slots' is: a
    // command-line error naming the flag, in the units the flag takes.
    if (*bytes < internal::kPageSize || *bytes > internal::kMaxHeapBytes) {
      return UsageError(
          "create", absl::StrCat("--heap ", *v, ": must be from ",
                                 HumanBytes(internal::kPageSize), " to ",
                                 HumanBytes(internal::kMaxHeapBytes), " (",
                                 internal::kPageSize, " to ",
                                 internal::kMaxHeapBytes, " bytes), e.g. 1G"));
    }
    options.heap_bytes = *bytes;
    // A heap smaller than one allocation chunk could hold nothing (every
    // process takes a whole chunk first), and attach refuses a chunk larger
    // than the segment; so small heaps get a chunk as large as the heap.
    const uint64_t capacity =
        (*bytes + internal::kPageSize - 1) & ~(internal::kPageSize - 1);
    if (capacity != 0 && capacity < options.chunk_bytes) {
      options.chunk_bytes = capacity;
    }
  }
  if (const std::string* v = inv.Value("--slots")) {
    absl::StatusOr<uint64_t> slots = ParseSize("--slots", *v);
    if (!slots.ok()) return UsageError("create", slots.status().message());
    // The table is indexed by the low bits of the hash, so its size is a
    // power of two; rounding a request silently could double the memory
    // asked for, so anything else is refused.
    if (*slots < 16 || *slots > (uint64_t{1} << 32) ||
        (*slots & (*slots - 1)) != 0) {
      return UsageError("create",
                        absl::StrCat("--slots ", *slots,
                                     ": must be a power of two from 16 to "
                                     "4294967296 (4G), e.g. 1M = 1048576"));
    }
    options.table_slots_log2 = static_cast<uint32_t>(__builtin_ctzll(*slots));
  }
  SignalGuard guard;
  absl::StatusOr<Heap> heap = Heap::CreateNamed(inv.args[0], options);
  if (!heap.ok()) {
    guard.StopIfPending("create", absl::StrCat("stopped; creating failed: ",
                                               heap.status().message()));
    return Fail(inv, heap.status());
  }
  const Stats s = heap->stats();
  struct stat st;
  const uint64_t resident =
      fstat(heap->segment().fd(), &st) == 0 ? uint64_t(st.st_blocks) * 512 : 0;
  std::printf(
      "created heap %s: %s of heap (reserved, not committed), %llu table "
      "slots, %s resident\n",
      heap->segment().name().c_str(), HumanBytes(s.heap_capacity).c_str(),
      static_cast<unsigned long long>(s.table_slots),
      HumanBytes(resident).c_str());
  guard.StopIfPending("create",
                      absl::StrCat("stopped after ", heap->segment().Describe(),
                                   " was created"));
  return kExitOk;
}

// ---------------------------------------------------------------------------
// ls

struct LsRow {
  std::string name, owner, resident, size, capacity, used, state;
};

// Describes /dev/shm entry `name`; nullopt when it is not a heap and
// `all` is false.
std::optional<LsRow> InspectShmEntry(int dir, const char* name, bool all) {
  LsRow row;
  // Names are printed as C escapes when they hold anything but printable
  // ASCII: a newline would make a fake row, a tab or UTF-8 misalign the
  // columns.
  const std::string_view raw(name);
  const bool printable = std::all_of(
      raw.begin(), raw.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  row.name = absl::StrCat(
      "/", printable ? std::string(raw) : absl::CHexEscape(Sv(raw)));
  struct stat st;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return std::nullopt;
  row.owner = UserName(st.st_uid);
  row.resident = HumanBytes(uint64_t(st.st_blocks) * 512);
  row.size = HumanBytes(uint64_t(st.st_size));
  row.capacity = row.used = "-";
  if (!S_ISREG(st.st_mode)) {
    if (!all) return std::nullopt;
    row.state = "not a shmheap (not a regular file)";
    return row;
  }
  // O_NONBLOCK and O_NOFOLLOW: never wait on, or be redirected by, whatever
  // else lives in /dev/shm. Only the header page is read; nothing is mapped.
  const int fd =
      openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    // Heaps are 0600, so another user's heap cannot be told from any other
    // file of theirs.
    if (!all) return std::nullopt;
    row.state = absl::StrCat("unreadable (", std::strerror(errno), ")");
    return row;
  }
  const std::optional<uint64_t> magic = ReadMagic(fd);
  if (magic != internal::kMagic) {
    close(fd);
    if (!all) return std::nullopt;
    row.state = "not a shmheap (no shmheap magic)";
    return row;
  }
  absl::StatusOr<tools::ImageInfo> info = tools::ReadImageInfo(fd, "");
  close(fd);
  if (!info.ok()) {
    absl::string_view why = info.status().message();
    absl::ConsumePrefix(&why, ": ");
    row.state = absl::StrCat("bad: ", why);
    return row;
  }
  row.capacity = HumanBytes(info->heap_limit - info->heap_start);
  row.used = HumanBytes(info->top - info->heap_start);
  if (info->phase == internal::kPhaseDamaged) {
    row.state = "bad: a collection found it damaged";
  } else if (info->phase != internal::kPhaseIdle) {
    row.state = internal::ProcessAlive(static_cast<pid_t>(info->gc_lock), 0)
                    ? absl::StrCat("collecting (pid ", info->gc_lock, ")")
                    : "ok (an interrupted collection finishes on next open)";
  } else {
    row.state = "ok";
  }
  return row;
}

int RunLs(const Invocation& inv) {
  const bool all = inv.Has("--all");
  DIR* dir = opendir(kShmDir);
  if (dir == nullptr) {
    return Fail(inv.command->name,
                absl::StrCat(kShmDir, ": ", std::strerror(errno)));
  }
  std::vector<LsRow> rows;
  while (struct dirent* e = readdir(dir)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) {
      continue;
    }
    if (std::optional<LsRow> row =
            InspectShmEntry(dirfd(dir), e->d_name, all)) {
      rows.push_back(*std::move(row));
    }
  }
  closedir(dir);
  std::sort(rows.begin(), rows.end(),
            [](const LsRow& a, const LsRow& b) { return a.name < b.name; });
  rows.insert(rows.begin(), LsRow{"NAME", "OWNER", "RESIDENT", "SIZE",
                                  "CAPACITY", "USED", "STATE"});
  size_t w[6] = {};
  for (const LsRow& r : rows) {
    const std::string* cols[] = {&r.name, &r.owner,    &r.resident,
                                 &r.size, &r.capacity, &r.used};
    for (int i = 0; i < 6; ++i) w[i] = std::max(w[i], cols[i]->size());
  }
  for (const LsRow& r : rows) {
    std::printf("%-*s  %-*s  %*s  %*s  %*s  %*s  %s\n", int(w[0]),
                r.name.c_str(), int(w[1]), r.owner.c_str(), int(w[2]),
                r.resident.c_str(), int(w[3]), r.size.c_str(), int(w[4]),
                r.capacity.c_str(), int(w[5]), r.used.c_str(), r.state.c_str());
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// stats

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

int RunStats(const Invocation& inv) {
  absl::StatusOr<Heap> heap = Open(inv, 0);
  if (!heap.ok()) return Fail(inv, heap.status());
  const Stats s = heap->stats();
  const internal::Segment& seg = heap->segment();
  const internal::Header& h = seg.header();
  struct stat st;
  if (fstat(seg.fd(), &st) != 0) {
    return Fail(inv.command->name,
                absl::StrCat(seg.Describe(), ": ", std::strerror(errno)));
  }
  // One list drives both outputs, so text and JSON never disagree. Keys are
  // stable: scripts may rely on them.
  enum Unit { kCount, kBytes, kBool };
  struct Field {
    const char* key;
    uint64_t value;
    Unit unit;
  };
  const Field fields[] = {
      {"table_slots", s.table_slots, kCount},
      {"table_used", s.table_used, kCount},
      {"table_tombstones", s.table_tombstones, kCount},
      {"live_blobs", s.live_blobs, kCount},
      {"heap_capacity", s.heap_capacity, kBytes},
      {"heap_top", s.heap_top, kBytes},
      {"live_bytes", s.live_bytes, kBytes},
      {"dead_bytes", s.dead_bytes, kBytes},
      {"sessions", s.sessions, kCount},
      {"collections", s.collections, kCount},
      {"dep_slots", s.dep_slots, kCount},
      {"dep_used", s.dep_used, kCount},
      {"dep_removed", s.dep_removed, kCount},
      {"keep_keys", (h.flags & internal::kFlagKeepKeys) != 0, kBool},
      {"max_sessions", h.max_sessions, kCount},
      {"chunk_bytes", h.chunk_bytes, kBytes},
      {"segment_bytes", h.total_bytes, kBytes},
      {"file_bytes", uint64_t(st.st_size), kBytes},
      {"resident_bytes", uint64_t(st.st_blocks) * 512, kBytes},
  };
  if (inv.Has("--json")) {
    std::string out = absl::StrCat("{\n  \"name\": ", JsonString(seg.name()));
    for (const Field& f : fields) {
      absl::StrAppend(&out, ",\n  \"", f.key, "\": ",
                      f.unit == kBool ? (f.value ? "true" : "false")
                                      : absl::StrCat(f.value));
    }
    std::printf("%s\n}\n", out.c_str());
    return kExitOk;
  }
  std::printf("%-16s  %s\n", "name", seg.name().c_str());
  for (const Field& f : fields) {
    std::string value = f.unit == kBytes  ? BytesField(f.value)
                        : f.unit == kBool ? (f.value ? "true" : "false")
                                          : absl::StrCat(f.value);
    // The command is itself attached while it reads the counters.
    if (std::strcmp(f.key, "sessions") == 0) value += " (including this one)";
    std::printf("%-16s  %s\n", f.key, value.c_str());
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// verify, gc

int RunVerify(const Invocation& inv) {
  absl::StatusOr<Heap> heap = Open(inv, 0);
  if (!heap.ok()) return Fail(inv, heap.status());
  if (absl::Status s = heap->Verify(); !s.ok()) return Fail(inv, s);
  const Stats s = heap->stats();
  std::printf("%s: ok (%llu live blobs, %s live, %llu table slots used)\n",
              heap->segment().Describe().c_str(),
              static_cast<unsigned long long>(s.live_blobs),
              HumanBytes(s.live_bytes).c_str(),
              static_cast<unsigned long long>(s.table_used));
  return kExitOk;
}

absl::StatusOr<CollectOptions> CollectOptionsFrom(const Invocation& inv) {
  CollectOptions options;
  if (const std::string* v = inv.Value("--deadline-ms")) {
    uint64_t ms = 0;
    if (!absl::SimpleAtoi(Sv(*v), &ms) || ms > (uint64_t{1} << 40)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --deadline-ms \"", absl::CHexEscape(Sv(*v)),
                       "\": a number of milliseconds"));
    }
    options.deadline = std::chrono::milliseconds(ms);
  }
  return options;
}

void PrintGcReport(const GcReport& r) {
  std::printf("heap_top            %llu -> %llu (reclaimed %llu bytes, %s)\n",
              static_cast<unsigned long long>(r.bytes_before),
              static_cast<unsigned long long>(r.bytes_after),
              static_cast<unsigned long long>(r.bytes_before - r.bytes_after),
              HumanBytes(r.bytes_before - r.bytes_after).c_str());
  std::printf("live_blobs          %llu\n",
              static_cast<unsigned long long>(r.live_blobs));
  std::printf("blobs_moved         %llu (%s)\n",
              static_cast<unsigned long long>(r.blobs_moved),
              HumanBytes(r.bytes_moved).c_str());
  std::printf("tombstones_cleared  %llu\n",
              static_cast<unsigned long long>(r.tombstones_cleared));
  std::printf("time                %.3f ms (%.3f ms to stop the world)\n",
              r.seconds * 1e3, r.handshake_seconds * 1e3);
}

int RunGc(const Invocation& inv) {
  absl::StatusOr<CollectOptions> options = CollectOptionsFrom(inv);
  if (!options.ok()) return UsageError("gc", options.status().message());
  absl::StatusOr<Heap> heap = Open(inv, 0);
  if (!heap.ok()) return Fail(inv, heap.status());
  const std::string described = heap->segment().Describe();
  SignalGuard guard;
  absl::StatusOr<GcReport> report = heap->Collect(*options);
  if (!report.ok()) {
    guard.StopIfPending("gc", absl::StrCat("stopped; the collection failed: ",
                                           report.status().message()));
    return Fail(inv, report.status());
  }
  if (!report->ran) {
    std::printf("%s: another process's collection ran meanwhile\n",
                described.c_str());
  } else {
    std::printf("%s: collected\n", described.c_str());
    PrintGcReport(*report);
  }
  guard.StopIfPending(
      "gc", absl::StrCat("stopped after the collection finished; ", described,
                         " is intact"));
  return kExitOk;
}

// ---------------------------------------------------------------------------
// clear

int RunClear(const Invocation& inv) {
  absl::StatusOr<CollectOptions> options = CollectOptionsFrom(inv);
  if (!options.ok()) return UsageError("clear", options.status().message());
  absl::StatusOr<Heap> heap = Open(inv, 0);
  if (!heap.ok()) return Fail(inv, heap.status());
  const std::string described = heap->segment().Describe();
  const uint64_t live = heap->stats().live_blobs;
  SignalGuard guard;
  absl::StatusOr<GcReport> report = heap->Clear(*options);
  if (!report.ok()) {
    guard.StopIfPending("clear", absl::StrCat("stopped; the clear failed: ",
                                              report.status().message()));
    return Fail(inv, report.status());
  }
  std::printf("%s: cleared\n", described.c_str());
  std::printf("values_dropped      %llu\n",
              static_cast<unsigned long long>(live));
  std::printf("heap_top            %llu -> 0 (%s)\n",
              static_cast<unsigned long long>(report->bytes_before),
              HumanBytes(report->bytes_before).c_str());
  std::printf("time                %.3f ms (%.3f ms to stop the world)\n",
              report->seconds * 1e3, report->handshake_seconds * 1e3);
  guard.StopIfPending(
      "clear", absl::StrCat("stopped after the clear finished; ", described,
                            " is empty"));
  return kExitOk;
}

// ---------------------------------------------------------------------------
// get

std::string Shortest(double v) {
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
std::string Shortest(float v) {
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

template <class T>
T Load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Element `p` of `kind` as text: shortest round-trip form for floats,
// (re,im) for complex numbers, numbers for the int8 kinds.
std::string FormatElement(Kind kind, const std::byte* p) {
  switch (kind) {
    case Kind::kFloat32:
      return Shortest(Load<float>(p));
    case Kind::kFloat64:
      return Shortest(Load<double>(p));
    case Kind::kInt8Signed:
      return absl::StrCat(Load<int8_t>(p));
    case Kind::kInt8Unsigned:
      return absl::StrCat(Load<uint8_t>(p));
    case Kind::kInt16Signed:
      return absl::StrCat(Load<int16_t>(p));
    case Kind::kInt16Unsigned:
      return absl::StrCat(Load<uint16_t>(p));
    case Kind::kInt32:
      return absl::StrCat(Load<int32_t>(p));
    case Kind::kInt64:
    case Kind::kInt:
    case Kind::kNativeint:
      return absl::StrCat(Load<int64_t>(p));
    case Kind::kComplex32: {
      const auto c = Load<std::complex<float>>(p);
      return absl::StrCat("(", Shortest(c.real()), ",", Shortest(c.imag()),
                          ")");
    }
    case Kind::kComplex64: {
      const auto c = Load<std::complex<double>>(p);
      return absl::StrCat("(", Shortest(c.real()), ",", Shortest(c.imag()),
                          ")");
    }
    case Kind::kChar:
      return absl::CHexEscape(
          absl::string_view(reinterpret_cast<const char*>(p), 1));
  }
  return "?";
}

int RunWait(const Invocation& inv) {
  absl::Duration timeout = absl::InfiniteDuration();
  if (const std::string* v = inv.Value("--timeout")) {
    double seconds = 0;
    // Up to a year: beyond that (and inf) there is no limit worth a number.
    if (!absl::SimpleAtod(Sv(*v), &seconds) || !(seconds >= 0) ||
        seconds > 365.0 * 24 * 3600) {
      return UsageError(
          "wait", absl::StrCat("invalid --timeout \"", absl::CHexEscape(Sv(*v)),
                               "\": a number of seconds, 0 or more"));
    }
    timeout = absl::Seconds(seconds);
  }
  absl::StatusOr<Heap> heap = Open(inv, 0);
  if (!heap.ok()) return Fail(inv, heap.status());
  const std::string& key = inv.args[1];
  // A signal must not end the process while its wait is counted in the
  // heap (Header::waiters): the count would stay until the session is
  // reclaimed, and every publish meanwhile would pay a wake. So signals are
  // held back and the wait runs in slices of kWaitSlice, between which a
  // held signal ends the command (the wait taken off first).
  constexpr absl::Duration kWaitSlice = absl::Milliseconds(100);
  SignalGuard guard;
  // Monotonic, as WaitFor's own deadline.
  using Clock = std::chrono::steady_clock;
  const bool forever = timeout == absl::InfiniteDuration();
  const Clock::time_point deadline =
      forever ? Clock::time_point::max()
              : Clock::now() + absl::ToChronoNanoseconds(timeout);
  for (;;) {
    const absl::Duration left =
        forever ? kWaitSlice
                : std::max(absl::FromChrono(deadline - Clock::now()),
                           absl::ZeroDuration());
    const absl::Status s = heap->WaitFor(key, std::min(left, kWaitSlice));
    if (s.ok()) break;
    if (s.code() != absl::StatusCode::kDeadlineExceeded) return Fail(inv, s);
    if (!forever && Clock::now() >= deadline) {
      return Fail(
          inv,
          absl::DeadlineExceededError(absl::StrCat(
              heap->segment().Describe(), ": key \"", absl::CHexEscape(Sv(key)),
              "\" was not published within ", absl::FormatDuration(timeout))));
    }
    guard.StopIfPending(
        "wait", absl::StrCat("stopped waiting; key \"",
                             absl::CHexEscape(Sv(key)), "\" is not present"));
  }
  std::printf("key \"%s\" present\n", absl::CHexEscape(Sv(key)).c_str());
  return kExitOk;
}

int RunGet(const Invocation& inv) {
  // Element counts shown by default: a row of numbers fits a line; a char
  // array reads as a string, so it shows more.
  std::optional<int64_t> limit;
  if (const std::string* v = inv.Value("-n")) {
    int64_t n = 0;
    if (*v == "all") {
      n = INT64_MAX;
    } else if (!absl::SimpleAtoi(Sv(*v), &n) || n < 0) {
      return UsageError("get",
                        absl::StrCat("invalid -n \"", absl::CHexEscape(Sv(*v)),
                                     "\": a count of elements, or all"));
    }
    limit = n;
  }
  absl::StatusOr<Heap> heap = Open(inv, 0);
  if (!heap.ok()) return Fail(inv, heap.status());
  const std::string& key = inv.args[1];
  absl::StatusOr<RawView> view = heap->GetRaw(key);
  if (!view.ok()) return Fail(inv, view.status());
  const Kind kind = view->kind();
  const int64_t size = view->size();
  const int64_t shown =
      std::min(size, limit.value_or(kind == Kind::kChar ? 80 : 10));
  std::string dims;
  for (int64_t d : view->dims()) {
    absl::StrAppend(&dims, dims.empty() ? "" : ", ", d);
  }
  std::printf("key     \"%s\"\n", absl::CHexEscape(Sv(key)).c_str());
  std::printf("kind    %s\n", std::string(KindName(kind)).c_str());
  std::printf("layout  %s\n", view->layout() == Layout::kC
                                  ? "c (row-major, indices from 0)"
                                  : "fortran (column-major, indices from 1)");
  std::printf("dims    [%s]\n", dims.c_str());
  std::printf("size    %lld element%s, %llu bytes\n",
              static_cast<long long>(size), size == 1 ? "" : "s",
              static_cast<unsigned long long>(view->size_bytes()));
  const std::byte* data = view->bytes().data();
  std::string text;
  if (kind == Kind::kChar) {
    text = absl::StrCat(
        "\"",
        absl::CHexEscape(absl::string_view(reinterpret_cast<const char*>(data),
                                           static_cast<size_t>(shown))),
        "\"", shown < size ? "..." : "");
  } else {
    const size_t element = ElementSize(kind);
    text = "[";
    for (int64_t i = 0; i < shown; ++i) {
      absl::StrAppend(&text, i ? ", " : "",
                      FormatElement(kind, data + element * i));
    }
    absl::StrAppend(&text, shown < size ? (shown ? ", ...]" : "...]") : "]");
  }
  std::printf("data    %s\n", text.c_str());
  return kExitOk;
}

// ---------------------------------------------------------------------------
// save, load, rm

int RunSave(const Invocation& inv) {
  absl::StatusOr<CollectOptions> options = CollectOptionsFrom(inv);
  if (!options.ok()) return UsageError("save", options.status().message());
  absl::StatusOr<Heap> heap = Open(inv, 0);
  if (!heap.ok()) return Fail(inv, heap.status());
  const std::string described = heap->segment().Describe();
  SignalGuard guard;
  absl::StatusOr<tools::SaveReport> saved =
      tools::SaveImage(*heap, inv.args[1], *options, guard.AsCancelCheck());
  if (!saved.ok()) {
    guard.StopIfPending(
        "save", saved.status().code() == absl::StatusCode::kCancelled
                    ? absl::StrCat("stopped; nothing saved (", inv.args[1],
                                   " not written), ", described, " is intact")
                    : absl::StrCat("stopped; the save failed: ",
                                   saved.status().message()));
    return Fail(inv, saved.status());
  }
  std::printf(
      "saved %s to %s: %llu live blobs, %s live, image of %llu bytes (%s); "
      "collected first, reclaiming %s\n",
      heap->segment().Describe().c_str(), inv.args[1].c_str(),
      static_cast<unsigned long long>(saved->stats.live_blobs),
      HumanBytes(saved->stats.live_bytes).c_str(),
      static_cast<unsigned long long>(saved->image_bytes),
      HumanBytes(saved->image_bytes).c_str(),
      HumanBytes(saved->gc.bytes_before - saved->gc.bytes_after).c_str());
  guard.StopIfPending(
      "save", absl::StrCat("stopped after ", inv.args[1], " was saved"));
  return kExitOk;
}

int RunLoad(const Invocation& inv) {
  SignalGuard guard;
  absl::StatusOr<Heap> heap =
      tools::LoadImage(inv.args[0], inv.args[1], guard.AsCancelCheck());
  if (!heap.ok()) {
    guard.StopIfPending(
        "load",
        heap.status().code() == absl::StatusCode::kCancelled
            ? absl::StrCat("stopped; heap ", inv.args[1], " not created")
            : absl::StrCat("stopped; the load failed: ",
                           heap.status().message()));
    return Fail(inv, heap.status());
  }
  const Stats s = heap->stats();
  std::printf("loaded %s from %s: %llu live blobs, %s live, %s capacity\n",
              heap->segment().Describe().c_str(), inv.args[0].c_str(),
              static_cast<unsigned long long>(s.live_blobs),
              HumanBytes(s.live_bytes).c_str(),
              HumanBytes(s.heap_capacity).c_str());
  guard.StopIfPending("load",
                      absl::StrCat("stopped after ", heap->segment().Describe(),
                                   " was loaded"));
  return kExitOk;
}

int RunRm(const Invocation& inv) {
  absl::StatusOr<std::string> name =
      internal::Segment::NormalizeName(inv.args[0]);
  if (!name.ok()) return Fail(inv, name.status());
  if (!inv.Has("--force")) {
    // Only the header's magic is checked, so a damaged heap or one of
    // another format version can still be removed, but nothing else.
    absl::StatusOr<int> fd = internal::OpenRegularFile(
        internal::ShmPath(*name), O_RDONLY, internal::Links::kRefuse,
        absl::StrCat("heap ", *name));
    if (!fd.ok()) {
      switch (fd.status().code()) {
        case absl::StatusCode::kNotFound:
          return Fail(inv.command->name, absl::StrCat("no heap named ", *name));
        case absl::StatusCode::kFailedPrecondition:
          return Fail(inv.command->name,
                      absl::StrCat(fd.status().message(),
                                   "; not removed (--force removes it "
                                   "anyway)"));
        default:
          return Fail(inv, fd.status());
      }
    }
    const std::optional<uint64_t> magic = ReadMagic(*fd);
    close(*fd);
    if (magic != internal::kMagic) {
      return Fail(inv.command->name,
                  absl::StrCat(*name,
                               " is not a shmheap segment; not removed "
                               "(--force removes it anyway)"));
    }
  }
  if (absl::Status s = Heap::UnlinkNamed(*name); !s.ok()) return Fail(inv, s);
  std::printf("removed heap %s\n", name->c_str());
  return kExitOk;
}

// ---------------------------------------------------------------------------
// keys

// One listed entry, copied out of the read scope.
struct Listed {
  std::string key;  // empty: published by hash alone
  uint64_t hash = 0;
  Kind kind = Kind::kChar;
  std::string dims;
};

int RunKeys(const Invocation& inv) {
  absl::StatusOr<Heap> heap = Open(inv, 0);
  if (!heap.ok()) return Fail(inv, heap.status());
  const std::string* prefix = inv.args.size() > 1 ? &inv.args[1] : nullptr;
  std::vector<Listed> listed;
  {
    // The entries are copied out and the scope ends before anything is
    // printed: a stdout that blocks (a pager) must not hold collections off.
    absl::StatusOr<ReadScope> scope = heap->Read();
    if (!scope.ok()) return Fail(inv, scope.status());
    scope->ForEach([&](const ReadScope::Entry& e) {
      if (prefix != nullptr &&
          (e.key.empty() || !absl::StartsWith(Sv(e.key), *prefix))) {
        return true;
      }
      Listed l{std::string(e.key), e.hash, e.value.kind(), ""};
      for (int64_t d : e.value.dims()) {
        absl::StrAppend(&l.dims, l.dims.empty() ? "" : ", ", d);
      }
      listed.push_back(std::move(l));
      return true;
    });
  }
  // Keys in byte order, then the hash-only entries by hash.
  std::sort(listed.begin(), listed.end(), [](const Listed& a, const Listed& b) {
    if (a.key.empty() != b.key.empty()) return b.key.empty();
    return a.key.empty() ? a.hash < b.hash : a.key < b.key;
  });
  for (const Listed& l : listed) {
    const std::string name =
        l.key.empty() ? absl::StrFormat("hash %#018x", l.hash)
                      : absl::StrCat("\"", absl::CHexEscape(l.key), "\"");
    std::printf("%s\t%s\t[%s]\n", name.c_str(),
                std::string(KindName(l.kind)).c_str(), l.dims.c_str());
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------

const std::vector<Command>& Commands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
      {"create",
       "NAME [--heap SIZE] [--slots N]",
       "create an empty named heap",
       "Creates heap NAME in /dev/shm (O_EXCL, mode 0600).\n"
       "\n"
       "  --heap SIZE   capacity for blobs (default 1G): reserved, not\n"
       "                committed; memory is taken one chunk at a time\n"
       "  --slots N     hash-table slots of 16 bytes each (default 1M =\n"
       "                1048576): a power of two from 16 to 4G\n"
       "\n"
       "SIZE and N are digits with an optional K, M, G or T suffix (powers\n"
       "of 1024): 4096, 64K, 512M, 1G.\n",
       {{"--heap", "SIZE"}, {"--slots", "N"}},
       1,
       1,
       RunCreate},
      {"ls",
       "[--all]",
       "list the heaps in /dev/shm",
       "Lists the shmheap segments in /dev/shm: name, owner, memory in use\n"
       "(RESIDENT, the pages allocated), file size, heap capacity, heap\n"
       "bytes handed out (USED) and state. Only each header page is read;\n"
       "nothing is attached.\n"
       "\n"
       "  --all   also list the other files in /dev/shm, and those that\n"
       "          cannot be read (other users' heaps are mode 0600), with\n"
       "          the reason\n",
       {{"--all", ""}},
       0,
       0,
       RunLs},
      {"stats",
       "NAME [--json]",
       "show a heap's counters",
       "Prints the heap's counters (Heap::stats) and geometry, one per\n"
       "line, with byte counts exact and in binary units.\n"
       "\n"
       "  --json   one JSON object; its keys are stable: name, table_slots,\n"
       "           table_used, table_tombstones, live_blobs, heap_capacity,\n"
       "           heap_top, live_bytes, dead_bytes, sessions, collections,\n"
       "           dep_slots, dep_used, dep_removed (the dependency table:\n"
       "           slots, non-empty slots, removed edges; 0 without one),\n"
       "           keep_keys, max_sessions, chunk_bytes, segment_bytes,\n"
       "           file_bytes, resident_bytes (numbers are bytes or counts)\n"
       "\n"
       "sessions counts this command too: it is attached while it reads.\n",
       {{"--json", ""}},
       1,
       1,
       RunStats},
      {"verify",
       "NAME",
       "check a heap's structure (fsck)",
       "Runs Heap::Verify: header, every slot -> a blob the heap walk\n"
       "reaches, the heap parsing end to end, counters agreeing. Prints\n"
       "\"ok\", or the first problem on stderr and exits 1. Run it while no\n"
       "process writes the heap (concurrent writers make counters\n"
       "disagree).\n",
       {},
       1,
       1,
       RunVerify},
      {"gc",
       "NAME [--deadline-ms MS]",
       "compact a heap in place",
       "Runs Heap::Collect: waits until no process holds a view or Pin,\n"
       "slides live blobs down, returns the freed tail to the OS and clears\n"
       "tombstones, then prints what it reclaimed.\n"
       "\n"
       "  --deadline-ms MS   how long to wait for other processes to leave\n"
       "                     their scope (default 10000); past it nothing\n"
       "                     changes and the command fails\n"
       "\n"
       "SIGINT, SIGTERM or SIGHUP never interrupt the collection: it runs to\n"
       "its end (or its deadline), then the command stops with one line and\n"
       "dies by that signal.\n",
       {{"--deadline-ms", "MS"}},
       1,
       1,
       RunGc},
      {"clear",
       "NAME [--deadline-ms MS]",
       "empty a heap in place",
       "Runs Heap::Clear: waits until no process holds a view or Pin, then\n"
       "drops every key and counter, empties the table (it keeps its size),\n"
       "returns the heap's pages to the OS and restarts the statistics.\n"
       "Attached processes keep working without re-attaching; the stop flag\n"
       "is kept.\n"
       "\n"
       "  --deadline-ms MS   how long to wait for other processes to leave\n"
       "                     their scope (default 10000); past it nothing\n"
       "                     changes and the command fails\n"
       "\n"
       "SIGINT, SIGTERM or SIGHUP never interrupt the clear: it runs to its\n"
       "end (or its deadline), then the command stops with one line and dies\n"
       "by that signal.\n",
       {{"--deadline-ms", "MS"}},
       1,
       1,
       RunClear},
      {"get",
       "NAME KEY [-n N]",
       "show an array: kind, layout, dims, elements",
       "Prints the array stored under KEY: its kind, layout, dims, size and\n"
       "first elements in storage order (floats in shortest round-trip\n"
       "form, complex numbers as (re,im), char arrays as a quoted string).\n"
       "\n"
       "  -n N   elements to print: a count, or all (default 10; 80 for\n"
       "         char arrays)\n",
       {{"-n", "N"}},
       2,
       2,
       RunGet},
      {"wait",
       "NAME KEY [--timeout SECONDS]",
       "wait until some process publishes KEY",
       "Runs Heap::WaitFor: returns at once if KEY has a value, else sleeps\n"
       "(holding no scope: collections run meanwhile) until some process\n"
       "publishes it. Prints \"key \"KEY\" present\" and exits 0, or fails\n"
       "(exit 1) when the timeout runs out first.\n"
       "\n"
       "  --timeout SECONDS  how long to wait at most (a decimal number; 0\n"
       "                     checks once); default: no limit\n"
       "\n"
       "SIGINT, SIGTERM or SIGHUP stop the wait within a tenth of a second:\n"
       "the command takes itself off the heap's waiters, prints one line and\n"
       "dies by that signal.\n",
       {{"--timeout", "SECONDS"}},
       2,
       2,
       RunWait},
      {"keys",
       "NAME [PREFIX]",
       "list the keys of a heap, with kinds and dims",
       "Prints one line per published value: its key (quoted, escaped as C\n"
       "does), kind and dims, separated by tabs, keys in byte order. Values\n"
       "published by hash alone (a HashedKey without bytes, or a heap made\n"
       "without keep_keys) have no key to print: they are listed last, as\n"
       "\"hash 0x...\". With PREFIX, only the keys that start with it.\n"
       "\n"
       "The listing is one pass over the table inside a read scope: values\n"
       "published or removed meanwhile may or may not be listed.\n",
       {},
       1,
       2,
       RunKeys},
      {"save",
       "NAME FILE [--deadline-ms MS]",
       "compact a heap and write it to FILE",
       "Collects heap NAME, then writes it to the new file FILE (mode\n"
       "0600): header, registry, table and the used heap, up to the heap's\n"
       "top; zero pages and the unused capacity are not written. FILE is a\n"
       "heap file itself (Heap::OpenFile maps it straight back) and is\n"
       "checked with Verify before the command succeeds.\n"
       "\n"
       "No process may write the heap during the save (readers may run): the\n"
       "copy holds a Pin, so no collection moves data under it, but a\n"
       "concurrent writer makes the check fail, and then nothing is saved.\n"
       "\n"
       "FILE appears only once it is complete and verified (it is written\n"
       "unnamed, then linked into place); nothing at FILE is ever replaced.\n"
       "SIGINT, SIGTERM or SIGHUP let the collection finish, then abandon\n"
       "the copy: no FILE is written. Even SIGKILL leaves no FILE.\n"
       "\n"
       "  --deadline-ms MS   as for gc\n",
       {{"--deadline-ms", "MS"}},
       2,
       2,
       RunSave},
      {"load",
       "FILE NAME",
       "create heap NAME from a saved FILE",
       "Creates heap NAME in /dev/shm (mode 0600, never replacing anything)\n"
       "as a copy of the heap image FILE (from save, or any heap file),\n"
       "owned by you, and runs Verify on it. NAME appears only once the copy\n"
       "is complete and verified: if FILE is not a valid heap, or the command\n"
       "is stopped (any signal, SIGKILL included), nothing is created.\n"
       "FILE is only read; a symbolic link to it is followed.\n",
       {},
       2,
       2,
       RunLoad},
      {"rm",
       "NAME [--force]",
       "remove a heap from /dev/shm",
       "Removes heap NAME from /dev/shm (Heap::UnlinkNamed). Processes that\n"
       "have it mapped keep using it until they exit.\n"
       "\n"
       "  --force   remove NAME even if it is not a shmheap segment\n",
       {{"--force", ""}},
       1,
       1,
       RunRm},
  };
  return *commands;
}

void PrintUsage() {
  std::printf(
      "usage: shmheap COMMAND [ARGS]\n"
      "\n"
      "Creates, inspects, saves and removes shmheap heaps in /dev/shm.\n"
      "\n"
      "commands:\n");
  for (const Command& c : Commands()) {
    const std::string line = absl::StrCat(Sv(c.name), " ", Sv(c.synopsis));
    std::printf("  %-38s %s\n", line.c_str(), std::string(c.summary).c_str());
  }
  std::printf(
      "\n"
      "NAME is a heap in /dev/shm: \"demo\" or \"/demo\" (1 to 200 bytes, no\n"
      "other '/'). \"shmheap COMMAND --help\" describes a command.\n"
      "\n"
      "Exit status: 0 done; 1 the operation failed (bad heap name, missing\n"
      "heap, ...); 2 the command line is wrong. Errors are one line on\n"
      "stderr: \"shmheap: COMMAND: message\".\n");
}

void PrintCommandHelp(const Command& c) {
  std::printf("usage: shmheap %s %s\n\n%s", std::string(c.name).c_str(),
              std::string(c.synopsis).c_str(), std::string(c.help).c_str());
}

int Run(int argc, char** argv) {
  if (argc < 2) return UsageError("", "missing command");
  const std::string_view first = argv[1];
  if (first == "--help" || first == "-h") {
    PrintUsage();
    return kExitOk;
  }
  const std::vector<Command>& commands = Commands();
  auto find = [&](std::string_view name) -> const Command* {
    for (const Command& c : commands) {
      if (c.name == name) return &c;
    }
    return nullptr;
  };
  if (first == "help") {
    if (argc == 2) {
      PrintUsage();
      return kExitOk;
    }
    const Command* c = find(argv[2]);
    if (c == nullptr || argc > 3) {
      return UsageError("help", absl::StrCat("no command \"",
                                             absl::CHexEscape(argv[2]), "\""));
    }
    PrintCommandHelp(*c);
    return kExitOk;
  }
  Invocation inv;
  inv.command = find(first);
  if (inv.command == nullptr) {
    return UsageError("", absl::StrCat("unknown command \"",
                                       absl::CHexEscape(Sv(first)), "\""));
  }
  const Command& c = *inv.command;
  // --help wins wherever it appears, so that a half-typed command line can
  // still ask for help.
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--") break;
    if (a == "--help" || a == "-h") {
      PrintCommandHelp(c);
      return kExitOk;
    }
  }
  bool options_done = false;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      inv.args.emplace_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    std::string_view name = a, value;
    bool inline_value = false;
    if (const size_t eq = a.find('='); a.substr(0, 2) == "--" && eq != a.npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    auto spec = std::find_if(c.flags.begin(), c.flags.end(),
                             [&](const FlagSpec& f) { return f.name == name; });
    if (spec == c.flags.end()) {
      return UsageError(c.name, absl::StrCat("unknown option \"",
                                             absl::CHexEscape(Sv(name)), "\""));
    }
    if (spec->value_name.empty()) {
      if (inline_value) {
        return UsageError(c.name, absl::StrCat(Sv(name), " takes no value"));
      }
    } else if (!inline_value) {
      if (i + 1 >= argc) {
        return UsageError(
            c.name, absl::StrCat(Sv(name), " needs a ", Sv(spec->value_name)));
      }
      value = argv[++i];
    }
    inv.flags[std::string(name)] = std::string(value);
  }
  if (inv.args.size() < c.min_args || inv.args.size() > c.max_args) {
    return UsageError(
        c.name,
        absl::StrCat(inv.args.size() < c.min_args ? "missing arguments"
                                                  : "too many arguments",
                     ": shmheap ", Sv(c.name), " ", Sv(c.synopsis)));
  }
  return c.run(inv);
}

}  // namespace
}  // namespace shmheap::cli

int main(int argc, char** argv) { return shmheap::cli::Run(argc, argv); }
