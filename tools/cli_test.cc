// End-to-end tests of the shmheap command-line tool. Each CLI call is the
// real binary (//tools:shmheap), fork+exec'd with its stdout and stderr
// captured, so these tests see exactly what a user sees: the output, the
// exit status and the one-line errors.
//
// What they prove:
//  * create makes a named heap that a forked child fills through the
//    library (Heap::OpenNamed, Add of several kinds and both layouts); then
//    stats (text and --json) counts what the child wrote, get prints each
//    array's kind, layout, dims and first elements, verify says ok, and
//    after the parent removes two arrays through the library gc reports the
//    bytes it reclaimed;
//  * save writes an image that is itself a heap file: Heap::OpenFile reads
//    the same values from it, Verify passes, no session of the processes
//    that had the heap open survives in it, and it ends at the heap's top
//    rather than its capacity; load maps it back under a new name, and get
//    prints the same for every key; ls lists both heaps; rm removes them;
//  * a save that cannot collect (another process holds a view) fails within
//    its deadline and leaves no file;
//  * bad names ("a/b", 201 bytes, "", ".", "..") and missing heaps give
//    exit status 1, exactly one line on stderr and nothing on stdout, for
//    every command; load of a file that is not a valid heap image (text,
//    empty, truncated, a corrupted table) fails the same way and leaves
//    nothing in /dev/shm; load never replaces an existing heap;
//  * ls and rm leave /dev/shm files that are not heaps alone (rm --force
//    excepted);
//  * --help works at the top and after every command (exit 0, stdout);
//    command-line errors exit 2 with one line and change nothing;
//  * a FIFO, a directory, a symbolic link or a device where a command
//    expects a heap (in /dev/shm) or a file: one line saying what it is,
//    exit 1, within a 10 s deadline (every call runs under one, so a hang
//    fails fast), and the object is left as it was;
//  * SIGINT and SIGTERM at random moments of gc and save (20 of each, on a
//    32 MiB heap that takes tens of milliseconds): the collection is never
//    cut short, the heap verifies and holds every value afterwards, a save
//    stopped by a signal leaves no FILE, and the command prints one line and
//    dies by that signal;
//  * SIGKILL at random moments of save (its collection included) and of
//    load (20 of each): FILE or NAME either does not exist or is complete
//    (Verify and every value), no temporary is left, the source heap keeps
//    every value, and the next save or load succeeds;
//  * wait returns once another process publishes its key, at once for a
//    present key, and fails after its timeout for an absent one.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/strings.h"
#include "shmheap.h"
#include "tests/planted_files.h"
#include "tests/test_util.h"
#include "tools/image.h"
#include "tools/sample_arrays.h"

namespace shmheap {
namespace {

std::string g_cli;  // path of the shmheap binary (argv[1])

struct Result {
  int code = -1;  // exit status, or 1000 + signal
  std::string out, err;
  bool timed_out = false;  // killed (SIGKILL) at its deadline
  double seconds = 0;      // wall time from fork to exit
};

// A CLI process started by StartCli, with its stdout and stderr piped.
struct Running {
  pid_t pid = -1;
  int out = -1, err = -1;
  std::chrono::steady_clock::time_point started;
};

Running StartCli(const std::vector<std::string>& args) {
  std::vector<std::string> strings = {g_cli};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  Running r;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return r;
  }
  r.started = std::chrono::steady_clock::now();
  r.pid = fork();
  if (r.pid == 0) {
    dup2(out[1], 1);  // dup2 clears O_CLOEXEC on 1 and 2
    dup2(err[1], 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  r.out = out[0];
  r.err = err[0];
  return r;
}

// Collects the output of `r` and waits for it to exit; past `deadline` it
// is killed and the result says timed_out, so that a CLI call that hangs
// fails its test at once instead of stalling the suite.
Result WaitCli(Running r,
               std::chrono::milliseconds deadline = std::chrono::seconds(120)) {
  Result result;
  // Both pipes at once, so that neither can fill up and stall the child.
  struct pollfd fds[2] = {{r.out, POLLIN, 0}, {r.err, POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_pipes = 2;
  const auto end = r.started + deadline;
  while (open_pipes > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(r.pid, SIGKILL);
      break;
    }
    const int n = poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (const pollfd& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  int status = 0;
  waitpid(r.pid, &status, 0);
  result.seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - r.started)
                       .count();
  result.code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
  return result;
}

// Runs the CLI with `args`, capturing stdout and stderr.
Result Cli(const std::vector<std::string>& args,
           std::chrono::milliseconds deadline = std::chrono::seconds(120)) {
  return WaitCli(StartCli(args), deadline);
}

std::string Describe(const std::vector<std::string>& args, const Result& r) {
  std::string s = "shmheap";
  for (const std::string& a : args) absl::StrAppend(&s, " '", a, "'");
  return absl::StrCat(s, "\n  exit ", r.code,
                      r.timed_out ? " (killed at its deadline: it hung)" : "",
                      "\n  stdout: ", r.out, "\n  stderr: ", r.err);
}

// Runs the CLI and expects exit status 0 with nothing on stderr.
std::string CliOk(const std::vector<std::string>& args) {
  const Result r = Cli(args);
  EXPECT_EQ(r.code, 0) << Describe(args, r);
  EXPECT_EQ(r.err, "") << Describe(args, r);
  return r.out;
}

// Runs the CLI and expects a failure: status `code`, nothing on stdout,
// exactly one line "shmheap: <command>: ..." on stderr containing `needle`.
void CliFails(const std::vector<std::string>& args, std::string_view needle,
              int code = 1,
              std::chrono::milliseconds deadline = std::chrono::seconds(120)) {
  const Result r = Cli(args, deadline);
  const std::string what = Describe(args, r);
  EXPECT_EQ(r.code, code) << what;
  EXPECT_EQ(r.out, "") << what;
  ASSERT_FALSE(r.err.empty()) << what;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << what;
  EXPECT_EQ(r.err.rfind("shmheap: ", 0), 0u) << what;
  if (!args.empty() && code == 1) {
    EXPECT_EQ(r.err.rfind(absl::StrCat("shmheap: ", args[0], ": "), 0), 0u)
        << what;
  }
  EXPECT_NE(r.err.find(needle), std::string::npos)
      << "expected \"" << needle << "\" in: " << what;
}

// The value of line "KEY  value" in the CLI's key/value output ("" if none).
std::string Field(const std::string& text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string_view line(
        text.data() + pos,
        (end == std::string::npos ? text.size() : end) - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key &&
        line[key.size()] == ' ') {
      std::string_view value = line.substr(key.size());
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      return std::string(value);
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return "";
}

// The number under "key" in the CLI's JSON output; fails the test if absent.
uint64_t JsonNumber(const std::string& json, std::string_view key) {
  const std::string quoted = absl::StrCat("\"", internal::Sv(key), "\": ");
  const size_t pos = json.find(quoted);
  if (pos == std::string::npos) {
    ADD_FAILURE() << "no " << key << " in " << json;
    return UINT64_MAX;
  }
  return std::strtoull(json.c_str() + pos + quoted.size(), nullptr, 10);
}

bool ShmExists(const std::string& name) {
  return access(absl::StrCat("/dev/shm/", name).c_str(), F_OK) == 0;
}

bool FileExists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

// Tests run in sandboxes with pid namespaces of their own, where every test
// process may be pid 12; a random tag keeps concurrent runs apart in the
// shared /dev/shm.
const std::string& RunTag() {
  static const std::string* tag = [] {
    std::random_device random;
    return new std::string(absl::StrFormat("%d-%08x", getpid(), random()));
  }();
  return *tag;
}

class CliTest : public ::testing::Test {
 protected:
  // A heap name unique to this process, removed after the test.
  std::string HeapName(std::string_view what) {
    std::string name =
        absl::StrCat("shmheap-cli-test-", RunTag(), "-", internal::Sv(what));
    names_.push_back(name);
    return name;
  }
  // A path in the test's temporary directory, removed after the test.
  std::string TempPath(std::string_view what) {
    const char* dir = std::getenv("TEST_TMPDIR");
    std::string path =
        absl::StrCat(dir != nullptr ? dir : "/tmp", "/shmheap-cli-test-",
                     RunTag(), "-", internal::Sv(what));
    unlink(path.c_str());
    files_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const std::string& n : names_) (void)Heap::UnlinkNamed(n);
    for (const std::string& f : files_) unlink(f.c_str());
  }

  // Creates heap `name` with the CLI and fills it from a forked child
  // through the library.
  void CreateAndFill(const std::string& name) {
    const std::string out =
        CliOk({"create", name, "--heap", "64M", "--slots", "4K"});
    EXPECT_NE(out.find(absl::StrCat("created heap /", name)), std::string::npos)
        << out;
    const pid_t pid = fork();
    if (pid == 0) {
      // The Heap is destroyed before _exit, so the child leaves its session
      // the way a well-behaved worker does.
      const int rc = [&] {
        absl::StatusOr<Heap> heap = Heap::OpenNamed(name);
        if (!heap.ok()) return 2;
        if (!tools::testing::WriteSampleArrays(*heap).ok()) return 3;
        // Three dependency edges, one of them removed.
        if (!heap->AddDep(1, 2).ok() || !heap->AddDep(1, 3).ok() ||
            !heap->AddDep(2, 4).ok() || !heap->RemoveDeps(2).ok()) {
          return 4;
        }
        return 0;
      }();
      _exit(rc);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << "the writer child failed";
  }

 private:
  std::vector<std::string> names_;
  std::vector<std::string> files_;
};

TEST_F(CliTest, EndToEnd) {
  const std::string name = HeapName("e2e");
  const std::string copy = HeapName("e2e-copy");
  const std::string image = TempPath("e2e.img");
  ASSERT_NO_FATAL_FAILURE(CreateAndFill(name));
  const uint64_t n = tools::testing::kSampleArrays;

  // stats: what the child wrote; the child's session is gone, so the only
  // session is the command's own.
  std::string json = CliOk({"stats", name, "--json"});
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(JsonNumber(json, "live_blobs"), n);
  EXPECT_EQ(JsonNumber(json, "table_used"), n);
  EXPECT_EQ(JsonNumber(json, "table_tombstones"), 0u);
  EXPECT_EQ(JsonNumber(json, "table_slots"), 4096u);
  EXPECT_EQ(JsonNumber(json, "heap_capacity"), uint64_t{64} << 20);
  EXPECT_EQ(JsonNumber(json, "sessions"), 1u);
  EXPECT_EQ(JsonNumber(json, "collections"), 0u);
  EXPECT_GT(JsonNumber(json, "live_bytes"),
            2 * tools::testing::kScratchElements * sizeof(double));
  EXPECT_NE(json.find(absl::StrCat("\"name\": \"/", name, "\"")),
            std::string::npos);
  EXPECT_NE(json.find("\"keep_keys\": true"), std::string::npos);
  EXPECT_EQ(JsonNumber(json, "dep_slots"), uint64_t{1} << 17);
  EXPECT_EQ(JsonNumber(json, "dep_used"), 3u);
  EXPECT_EQ(JsonNumber(json, "dep_removed"), 1u);
  const std::string text = CliOk({"stats", name});
  EXPECT_EQ(Field(text, "dep_slots"), "131072");
  EXPECT_EQ(Field(text, "dep_used"), "3");
  EXPECT_EQ(Field(text, "name"), "/" + name);
  EXPECT_EQ(Field(text, "live_blobs"), absl::StrCat(n));
  EXPECT_EQ(Field(text, "table_slots"), "4096");
  EXPECT_EQ(Field(text, "heap_capacity"), "67108864 (64.0 MiB)");

  // get: kind, layout, dims and first elements of every sample.
  std::string out = CliOk({"get", name, "temps"});
  EXPECT_EQ(Field(out, "key"), "\"temps\"");
  EXPECT_EQ(Field(out, "kind"), "float32");
  EXPECT_EQ(Field(out, "layout"), "c (row-major, indices from 0)");
  EXPECT_EQ(Field(out, "dims"), "[2, 3]");
  EXPECT_EQ(Field(out, "size"), "6 elements, 24 bytes");
  EXPECT_EQ(Field(out, "data"), "[20.5, 21, 19.25, 18, 22.125, 23]");
  out = CliOk({"get", name, "squares"});
  EXPECT_EQ(Field(out, "kind"), "int32");
  EXPECT_EQ(Field(out, "dims"), "[1000]");
  EXPECT_EQ(Field(out, "data"), "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81, ...]");
  EXPECT_EQ(Field(CliOk({"get", name, "squares", "-n", "3"}), "data"),
            "[0, 1, 4, ...]");
  EXPECT_EQ(Field(CliOk({"get", name, "squares", "-n", "0"}), "data"), "[...]");
  const std::string all =
      Field(CliOk({"get", name, "squares", "-n", "all"}), "data");
  EXPECT_EQ(std::count(all.begin(), all.end(), ','), 999) << all;
  EXPECT_TRUE(all.ends_with(", 998001]")) << all;
  out = CliOk({"get", name, "spectrum"});
  EXPECT_EQ(Field(out, "kind"), "complex64");
  EXPECT_EQ(Field(out, "layout"), "fortran (column-major, indices from 1)");
  EXPECT_EQ(Field(out, "dims"), "[2, 2]");
  EXPECT_EQ(Field(out, "data"), "[(1,-1), (0.5,2), (-3,0), (0,0.25)]");
  out = CliOk({"get", name, "greeting"});
  EXPECT_EQ(Field(out, "kind"), "char");
  EXPECT_EQ(Field(out, "data"), "\"hello,\\tshmheap\\n\"");
  EXPECT_EQ(Field(CliOk({"get", name, "greeting", "-n", "5"}), "data"),
            "\"hello\"...");
  out = CliOk({"get", name, "bytes"});
  EXPECT_EQ(Field(out, "kind"), "int8_unsigned");
  EXPECT_EQ(Field(out, "data"), "[0, 127, 128, 255]");
  out = CliOk({"get", name, "deltas"});
  EXPECT_EQ(Field(out, "kind"), "int8_signed");
  EXPECT_EQ(Field(out, "data"), "[-128, -1, 0, 127]");
  out = CliOk({"get", name, "scratch:0"});
  EXPECT_EQ(Field(out, "kind"), "float64");
  EXPECT_EQ(Field(out, "dims"), "[262144]");
  EXPECT_EQ(Field(out, "data"),
            "[0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, ...]");
  CliFails({"get", name, "nokey"}, "no key \"nokey\"");

  out = CliOk({"verify", name});
  EXPECT_NE(out.find(absl::StrCat("heap /", name, ": ok (", n, " live blobs")),
            std::string::npos)
      << out;

  // keys: every sample in byte order, with kind and dims; with a prefix,
  // the keys that start with it.
  EXPECT_EQ(CliOk({"keys", name}),
            "\"bytes\"\tint8_unsigned\t[4]\n"
            "\"deltas\"\tint8_signed\t[4]\n"
            "\"greeting\"\tchar\t[15]\n"
            "\"scratch:0\"\tfloat64\t[262144]\n"
            "\"scratch:1\"\tfloat64\t[262144]\n"
            "\"spectrum\"\tcomplex64\t[2, 2]\n"
            "\"squares\"\tint32\t[1000]\n"
            "\"temps\"\tfloat32\t[2, 3]\n");
  EXPECT_EQ(CliOk({"keys", name, "s"}),
            "\"scratch:0\"\tfloat64\t[262144]\n"
            "\"scratch:1\"\tfloat64\t[262144]\n"
            "\"spectrum\"\tcomplex64\t[2, 2]\n"
            "\"squares\"\tint32\t[1000]\n");
  EXPECT_EQ(CliOk({"keys", name, "nothing"}), "");

  // The parent removes two arrays through the library and keeps the heap
  // open (out of scope) through gc and save: an attached process.
  absl::StatusOr<Heap> heap = Heap::OpenNamed(name);
  ASSERT_TRUE(heap.ok()) << heap.status();
  ASSERT_TRUE(heap->Remove("scratch:0").ok());
  ASSERT_TRUE(heap->Remove("scratch:1").ok());
  out = CliOk({"gc", name});
  EXPECT_NE(out.find(absl::StrCat("heap /", name, ": collected")),
            std::string::npos)
      << out;
  const std::string top_line = Field(out, "heap_top");
  const size_t at = top_line.find("reclaimed ");
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_GE(std::strtoull(top_line.c_str() + at + 10, nullptr, 10),
            2 * tools::testing::kScratchElements * sizeof(double))
      << out;
  EXPECT_EQ(Field(out, "live_blobs"), absl::StrCat(n - 2));
  EXPECT_EQ(Field(out, "tombstones_cleared"), "2");
  // The scratch arrays were written first, so every survivor moved down.
  EXPECT_EQ(Field(out, "blobs_moved").rfind(absl::StrCat(n - 2, " ("), 0), 0u)
      << out;
  json = CliOk({"stats", name, "--json"});
  EXPECT_EQ(JsonNumber(json, "live_blobs"), n - 2);
  EXPECT_EQ(JsonNumber(json, "dead_bytes"), 0u);
  EXPECT_EQ(JsonNumber(json, "table_tombstones"), 0u);
  EXPECT_EQ(JsonNumber(json, "collections"), 1u);
  EXPECT_EQ(JsonNumber(json, "sessions"), 2u);  // the parent and the command
  const uint64_t heap_top = JsonNumber(json, "heap_top");
  const uint64_t heap_start = heap->segment().header().heap_start;

  // save: an image that ends at the heap's top and is itself a heap file.
  out = CliOk({"save", name, image});
  EXPECT_NE(out.find(absl::StrCat("saved heap /", name, " to ", image, ": ",
                                  n - 2, " live blobs")),
            std::string::npos)
      << out;
  struct stat st;
  ASSERT_EQ(stat(image.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(uint64_t(st.st_size), heap_start + heap_top);
  EXPECT_LT(uint64_t(st.st_size), JsonNumber(json, "segment_bytes"));
  {
    absl::StatusOr<Heap> file = Heap::OpenFile(image);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_TRUE(file->Verify().ok()) << file->Verify();
    const Stats s = file->stats();
    EXPECT_EQ(s.live_blobs, n - 2);
    EXPECT_EQ(s.sessions, 1u) << "sessions of the source's processes survive";
    EXPECT_EQ(s.dead_bytes, 0u);
    absl::StatusOr<ArrayView<float>> temps = file->Get<float>("temps");
    ASSERT_TRUE(temps.ok()) << temps.status();
    EXPECT_EQ((*temps)(1, 2), 23.0f);
    absl::StatusOr<ArrayView<int32_t>> squares = file->Get<int32_t>("squares");
    ASSERT_TRUE(squares.ok()) << squares.status();
    for (int i = 0; i < 1000; ++i) ASSERT_EQ((*squares)(i), i * i);
    EXPECT_FALSE(file->Contains("scratch:0"));
  }
  CliFails({"save", name, image}, "already exists");
  EXPECT_TRUE(Heap::OpenFile(image).ok()) << "a failed save touched the file";

  // load: the same arrays under another name.
  out = CliOk({"load", image, copy});
  EXPECT_NE(out.find(absl::StrCat("loaded heap /", copy, " from ", image, ": ",
                                  n - 2, " live blobs")),
            std::string::npos)
      << out;
  for (const char* key :
       {"temps", "squares", "spectrum", "greeting", "bytes", "deltas"}) {
    EXPECT_EQ(CliOk({"get", copy, key}), CliOk({"get", name, key})) << key;
  }
  CliFails({"get", copy, "scratch:0"}, "no key \"scratch:0\"");
  EXPECT_NE(CliOk({"verify", copy}).find(": ok ("), std::string::npos);
  EXPECT_EQ(JsonNumber(CliOk({"stats", copy, "--json"}), "live_blobs"), n - 2);
  EXPECT_EQ(JsonNumber(CliOk({"stats", copy, "--json"}), "dep_used"), 3u);

  // ls lists both; rm removes them.
  out = CliOk({"ls"});
  EXPECT_EQ(out.rfind("NAME", 0), 0u) << out;
  for (const std::string& h : {name, copy}) {
    const std::string row = Field(out, "/" + h);
    EXPECT_TRUE(row.ends_with("  ok")) << h << " in\n" << out;
  }
  heap = absl::UnknownError("closed");  // the parent lets go
  EXPECT_EQ(CliOk({"rm", name}), absl::StrCat("removed heap /", name, "\n"));
  EXPECT_EQ(CliOk({"rm", copy}), absl::StrCat("removed heap /", copy, "\n"));
  EXPECT_FALSE(ShmExists(name));
  EXPECT_FALSE(ShmExists(copy));
  CliFails({"stats", name}, absl::StrCat("no heap named /", name));
  CliFails({"rm", name}, absl::StrCat("no heap named /", name));
  out = CliOk({"ls"});
  EXPECT_EQ(out.find("/" + name + " "), std::string::npos) << out;
}

TEST_F(CliTest, KeysEscapesKeysAndListsHashOnlyValuesLast) {
  const std::string name = HeapName("keys");
  {
    Options o;
    o.heap_bytes = 16 << 20;
    o.table_slots_log2 = 8;
    absl::StatusOr<Heap> heap = Heap::CreateNamed(name, o);
    ASSERT_TRUE(heap.ok()) << heap.status();
    const std::span<const int64_t> scalar;  // no dims: one element
    const double one[] = {1.0};
    ASSERT_TRUE(*heap->Add<double>(std::string("tab\there\0", 9), one, scalar));
    ASSERT_TRUE(*heap->Add<double>(HashedKey{0xabc, ""}, one, scalar));
    ASSERT_TRUE(*heap->Add<double>(HashedKey{0x12, ""}, one, scalar));
    ASSERT_TRUE(*heap->Add<double>("plain", one, scalar));
  }
  EXPECT_EQ(CliOk({"keys", name}),
            "\"plain\"\tfloat64\t[]\n"
            "\"tab\\there\\x00\"\tfloat64\t[]\n"
            "hash 0x0000000000000012\tfloat64\t[]\n"
            "hash 0x0000000000000abc\tfloat64\t[]\n");
  EXPECT_EQ(CliOk({"keys", name, "p"}), "\"plain\"\tfloat64\t[]\n");
  CliFails({"keys", name, "a", "b"}, "too many arguments", 2);
  CliOk({"rm", name});
}

TEST_F(CliTest, SaveFailsWithinItsDeadlineWhileAProcessHoldsAView) {
  const std::string name = HeapName("pinned");
  const std::string image = TempPath("pinned.img");
  ASSERT_NO_FATAL_FAILURE(CreateAndFill(name));
  absl::StatusOr<Heap> heap = Heap::OpenNamed(name);
  ASSERT_TRUE(heap.ok()) << heap.status();
  absl::StatusOr<ArrayView<float>> view = heap->Get<float>("temps");
  ASSERT_TRUE(view.ok()) << view.status();
  CliFails({"save", name, image, "--deadline-ms", "200"}, "stayed in scope");
  EXPECT_FALSE(FileExists(image));
  CliFails({"gc", name, "--deadline-ms=200"}, "stayed in scope");
}

// clear empties a heap that another process keeps attached (out of scope):
// every key goes, the attached process reads kNotFound and adds again
// without re-attaching; while it holds a view, clear fails within its
// deadline and changes nothing.
TEST_F(CliTest, ClearEmptiesAnAttachedHeap) {
  const std::string name = HeapName("clear");
  ASSERT_NO_FATAL_FAILURE(CreateAndFill(name));
  absl::StatusOr<Heap> heap = Heap::OpenNamed(name);
  ASSERT_TRUE(heap.ok()) << heap.status();
  const uint64_t live = heap->stats().live_blobs;
  ASSERT_GT(live, 0u);
  {
    absl::StatusOr<ArrayView<float>> view = heap->Get<float>("temps");
    ASSERT_TRUE(view.ok()) << view.status();
    CliFails({"clear", name, "--deadline-ms", "200"}, "stayed in scope");
  }
  EXPECT_EQ(heap->stats().live_blobs, live);
  const std::string out = CliOk({"clear", name});
  EXPECT_NE(out.find(absl::StrCat("heap /", name, ": cleared")),
            std::string::npos)
      << out;
  EXPECT_EQ(Field(out, "values_dropped"), absl::StrCat(live));
  EXPECT_EQ(heap->stats().live_blobs, 0u);
  EXPECT_EQ(heap->Get<float>("temps").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(CliOk({"keys", name, ""}), "");
  const float v[] = {1.5f, 2.5f};
  const int64_t dims[] = {2};
  absl::StatusOr<bool> added = heap->Add<float>("temps", v, dims);
  ASSERT_TRUE(added.ok() && *added) << added.status();
  absl::StatusOr<ArrayView<float>> back = heap->Get<float>("temps");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->flat()[0], 1.5f);
  EXPECT_EQ(back->flat()[1], 2.5f);
  CliOk({"verify", name});
  CliFails({"clear", name, "--deadline-ms", "soon"}, "invalid --deadline-ms",
           2);
  CliFails({"clear"}, "", 2);
}

// Save's contract excludes concurrent writers, but a violation must never
// leave a bad image behind: each save either succeeds with an image that
// verifies, or fails with one line and leaves no file.
TEST_F(CliTest, SaveDuringWritesSucceedsOrLeavesNothing) {
  const std::string name = HeapName("racing");
  ASSERT_NO_FATAL_FAILURE(CreateAndFill(name));
  const pid_t writer = fork();
  if (pid_t(writer) == 0) {
    const int rc = [&] {
      absl::StatusOr<Heap> heap = Heap::OpenNamed(name);
      if (!heap.ok()) return 2;
      std::vector<float> v(300, 1.5f);
      const int64_t dims[] = {300};
      for (int i = 0;; ++i) {
        const std::string key = absl::StrCat("w:", i % 2000);
        // Replace and Remove too, so blobs die and the table changes.
        absl::StatusOr<bool> r = heap->Replace<float>(key, v, dims);
        if (!r.ok() &&
            r.status().code() != absl::StatusCode::kResourceExhausted)
          return 3;
        if (i % 3 == 0) (void)heap->Remove(key);
        if (i % 500 == 0) (void)heap->MaybeCollect();
      }
    }();
    _exit(rc);
  }
  int saved = 0, refused = 0;
  std::string refusal;
  for (int round = 0; round < 12; ++round) {
    const std::string image = TempPath(absl::StrCat("racing-", round));
    const std::vector<std::string> args = {"save", name, image};
    const Result r = Cli(args);
    if (r.code == 0) {
      ++saved;
      absl::StatusOr<Heap> file = Heap::OpenFile(image);
      ASSERT_TRUE(file.ok()) << file.status() << Describe(args, r);
      EXPECT_TRUE(file->Verify().ok()) << file->Verify();
    } else {
      ++refused;
      refusal = r.err;
      EXPECT_EQ(r.code, 1) << Describe(args, r);
      EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << Describe(args, r);
      EXPECT_FALSE(FileExists(image)) << Describe(args, r);
    }
  }
  kill(writer, SIGKILL);
  int status = 0;
  waitpid(writer, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "the writer failed: " << status;
  std::printf("saves during writes: %d succeeded, %d refused (last: %s)\n",
              saved, refused, refusal.c_str());
}

TEST_F(CliTest, BadNamesAndMissingHeapsFailWithOneLine) {
  const std::string file = TempPath("never-written.img");
  const std::string overlong(201, 'x');
  for (const std::string& bad : {std::string("a/b"), overlong, std::string(""),
                                 std::string("."), std::string("..")}) {
    SCOPED_TRACE("name \"" + bad + "\"");
    const std::vector<std::vector<std::string>> calls = {
        {"create", bad},        {"stats", bad},      {"stats", bad, "--json"},
        {"verify", bad},        {"gc", bad},         {"get", bad, "key"},
        {"save", bad, file},    {"load", file, bad}, {"rm", bad},
        {"rm", bad, "--force"},
    };
    for (const std::vector<std::string>& call : calls) {
      CliFails(call, "invalid heap name");
    }
  }
  EXPECT_FALSE(FileExists(file));

  const std::string missing = HeapName("missing");
  const std::string no_heap = absl::StrCat("no heap named /", missing);
  for (const std::vector<std::string>& call :
       std::vector<std::vector<std::string>>{{"stats", missing},
                                             {"stats", missing, "--json"},
                                             {"verify", missing},
                                             {"gc", missing},
                                             {"get", missing, "key"},
                                             {"save", missing, file},
                                             {"rm", missing}}) {
    CliFails(call, no_heap);
  }
  EXPECT_FALSE(FileExists(file));
  CliFails({"load", file, missing}, "no file");
  EXPECT_FALSE(ShmExists(missing));
}

TEST_F(CliTest, LoadRejectsWhatIsNotAHeapImageAndLeavesNothing) {
  const std::string name = HeapName("load-bad");
  auto write_file = [](const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary);
    f << bytes;
  };
  const std::string text = TempPath("text");
  write_file(text, "this is not a heap image, just some text\n");
  CliFails({"load", text, name}, "not a shmheap image (magic");
  EXPECT_FALSE(ShmExists(name));
  const std::string empty = TempPath("empty");
  write_file(empty, "");
  CliFails({"load", empty, name}, "not a shmheap image (0 bytes)");
  EXPECT_FALSE(ShmExists(name));
  CliFails({"load", "/", name}, "not a regular file");
  EXPECT_FALSE(ShmExists(name));

  // A good image to damage.
  const std::string source = HeapName("load-source");
  ASSERT_NO_FATAL_FAILURE(CreateAndFill(source));
  const std::string image = TempPath("good.img");
  CliOk({"save", source, image});
  std::string bytes;
  {
    std::ifstream f(image, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  const std::string truncated = TempPath("truncated.img");
  write_file(truncated, bytes.substr(0, 4096));
  CliFails({"load", truncated, name}, "truncated");
  EXPECT_FALSE(ShmExists(name));

  // A header that validates over a table slot that points outside the heap:
  // only Verify, after the copy, can see it.
  const int fd = open(image.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  absl::StatusOr<tools::ImageInfo> info = tools::ReadImageInfo(fd, image);
  close(fd);
  ASSERT_TRUE(info.ok()) << info.status();
  std::string corrupted = bytes;
  bool planted = false;
  for (uint64_t off = info->table_offset; off < info->heap_start; off += 16) {
    uint64_t addr;
    std::memcpy(&addr, corrupted.data() + off + 8, 8);
    if (addr == 0) continue;
    const uint64_t outside = uint64_t{1} << 40;
    std::memcpy(corrupted.data() + off + 8, &outside, 8);
    planted = true;
    break;
  }
  ASSERT_TRUE(planted);
  const std::string bad_table = TempPath("bad-table.img");
  write_file(bad_table, corrupted);
  // The image's own checksum catches it first...
  CliFails({"load", bad_table, name}, "checksum");
  EXPECT_FALSE(ShmExists(name));
  // ...and without one (an image a process attached to), Verify does.
  const uint64_t no_checksum = 0;
  std::memcpy(corrupted.data() + offsetof(internal::Header, image_checksum),
              &no_checksum, 8);
  write_file(bad_table, corrupted);
  CliFails({"load", bad_table, name}, "outside the heap");
  EXPECT_FALSE(ShmExists(name));

  // load never replaces a heap that exists.
  CliFails({"load", image, source}, "already exists");
  EXPECT_NE(CliOk({"verify", source}).find(": ok ("), std::string::npos);
  EXPECT_EQ(JsonNumber(CliOk({"stats", source, "--json"}), "live_blobs"),
            uint64_t{tools::testing::kSampleArrays});
}

TEST_F(CliTest, LsAndRmLeaveOtherFilesInDevShmAlone) {
  const std::string name = HeapName("foreign");
  const int fd =
      shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  // Page-sized, so that attaching fails on the magic rather than the size.
  const char junk[] = "some other program's shared memory";
  ASSERT_EQ(write(fd, junk, sizeof junk), ssize_t(sizeof junk));
  ASSERT_EQ(ftruncate(fd, 8192), 0);
  close(fd);
  EXPECT_EQ(CliOk({"ls"}).find("/" + name + " "), std::string::npos);
  const std::string row = Field(CliOk({"ls", "--all"}), "/" + name);
  EXPECT_TRUE(row.ends_with("not a shmheap (no shmheap magic)")) << row;
  CliFails({"stats", name}, "not a shmheap segment");
  CliFails({"rm", name}, "is not a shmheap segment; not removed");
  EXPECT_TRUE(ShmExists(name));
  CliOk({"rm", name, "--force"});
  EXPECT_FALSE(ShmExists(name));
}

TEST_F(CliTest, NamesWithControlCharactersAreRefusedAndListedEscaped) {
  // create refuses a name with a tab or a newline...
  const std::string tabbed = HeapName("tab") + "\tx";
  CliFails({"create", tabbed}, "no control characters");
  EXPECT_FALSE(ShmExists(tabbed));
  // ...and ls prints such a name (made by another program) as C escapes on
  // its own row, never raw: a raw newline would start a fake row.
  const std::string base = HeapName("newline");
  const std::string odd = base + "\nfake";
  const int fd = shm_open(("/" + odd).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(ftruncate(fd, 8192), 0);
  close(fd);
  const std::string out = CliOk({"ls", "--all"});
  EXPECT_NE(out.find("/" + base + "\\nfake "), std::string::npos) << out;
  EXPECT_EQ(out.find("\nfake"), std::string::npos) << out;
  // Opening and removing still take the name as it is.
  CliOk({"rm", odd, "--force"});
  EXPECT_FALSE(ShmExists(odd));
}

// wait: a `shmheap wait` process that sleeps (the heap's waiter count says
// so) exits 0 once this process publishes its key, printing that it is
// present; a present key returns at once; an absent one fails (exit 1, one
// line) once its timeout has passed; SIGINT or SIGTERM end a wait with one
// line and that signal, its count taken off the heap's waiters; bad
// timeouts are command-line errors.
TEST_F(CliTest, WaitReturnsOnceTheKeyIsPublishedAndTimesOut) {
  const std::string name = HeapName("wait");
  CliOk({"create", name, "--heap", "16M", "--slots", "1K"});
  absl::StatusOr<Heap> heap = Heap::OpenNamed(name);
  ASSERT_TRUE(heap.ok()) << heap.status();
  // Shorter than the waiter's periodic re-check (10 s): a missing wake
  // fails the call instead of being covered by the re-check.
  Running waiting = StartCli({"wait", name, "late", "--timeout", "6"});
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (heap->segment().header().waiters.load() == 0 &&
         std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(heap->segment().header().waiters.load(), 1u)
      << "the wait command never counted itself as waiting";
  const int32_t v[] = {4, 5, 6};
  const int64_t dims[] = {3};
  ASSERT_TRUE(*heap->Add<int32_t>("late", v, dims));
  const Result r = WaitCli(waiting, std::chrono::seconds(30));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "key \"late\" present\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(heap->segment().header().waiters.load(), 0u);

  EXPECT_EQ(CliOk({"wait", name, "late"}), "key \"late\" present\n");
  EXPECT_EQ(CliOk({"wait", name, "late", "--timeout", "0"}),
            "key \"late\" present\n");
  const Result absent = Cli({"wait", name, "absent", "--timeout", "0.05"});
  EXPECT_GE(absent.seconds, 0.05);  // a lower bound only: never early
  CliFails({"wait", name, "absent", "--timeout", "0.05"},
           "key \"absent\" was not published within 50ms");
  // A signal ends the wait, not the heap's count of it: the command takes
  // itself off the waiters before it dies by the signal.
  for (const int sig : {SIGINT, SIGTERM}) {
    Running stopped = StartCli({"wait", name, "never", "--timeout", "20"});
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (heap->segment().header().waiters.load() == 0 &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(heap->segment().header().waiters.load(), 1u);
    kill(stopped.pid, sig);
    const Result killed = WaitCli(stopped, std::chrono::seconds(10));
    EXPECT_EQ(killed.code, 1000 + sig) << killed.err;
    EXPECT_EQ(killed.out, "");
    EXPECT_EQ(
        killed.err,
        absl::StrCat("shmheap: wait: ", sig == SIGINT ? "SIGINT" : "SIGTERM",
                     ": stopped waiting; key \"never\" is not present\n"));
    EXPECT_EQ(heap->segment().header().waiters.load(), 0u)
        << "a signalled wait left its count in the heap";
  }
  CliFails({"wait", name, "absent", "--timeout", "-1"}, "invalid --timeout", 2);
  CliFails({"wait", name, "absent", "--timeout", "soon"}, "invalid --timeout",
           2);
  CliFails({"wait", name, "absent", "--timeout", "nan"}, "invalid --timeout",
           2);
}

TEST_F(CliTest, HelpEverywhereAndCommandLineErrors) {
  for (const std::vector<std::string>& call :
       std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
    EXPECT_EQ(CliOk(call).rfind("usage: shmheap COMMAND", 0), 0u);
  }
  for (const char* command : {"create", "ls", "stats", "verify", "gc", "clear",
                              "get", "wait", "save", "load", "rm"}) {
    const std::string usage = absl::StrCat("usage: shmheap ", command, " ");
    for (const std::vector<std::string>& call :
         std::vector<std::vector<std::string>>{{command, "--help"},
                                               {command, "-h"},
                                               {"help", command},
                                               {command, "x", "--help"}}) {
      EXPECT_EQ(CliOk(call).rfind(usage, 0), 0u) << call[0] << " " << call[1];
    }
  }

  const std::string name = HeapName("usage");
  CliFails({}, "missing command", 2);
  CliFails({"frobnicate"}, "unknown command \"frobnicate\"", 2);
  CliFails({"create"}, "missing arguments", 2);
  CliFails({"stats", name, "extra"}, "too many arguments", 2);
  CliFails({"stats", name, "--bogus"}, "unknown option \"--bogus\"", 2);
  CliFails({"create", name, "--heap"}, "--heap needs a SIZE", 2);
  CliFails({"create", name, "--heap", "12Q"}, "invalid size \"12Q\"", 2);
  CliFails({"create", name, "--heap", "G"}, "invalid size", 2);
  CliFails({"create", name, "--heap", "99999999999T"}, "too large", 2);
  CliFails({"create", name, "--slots", "1000"}, "power of two", 2);
  // Sizes out of the library's range are command-line errors too, as for
  // --slots, naming the flag and its units.
  CliFails({"create", name, "--heap", "0"},
           "--heap 0: must be from 4.0 KiB to 64.0 TiB", 2);
  CliFails({"create", name, "--heap", "1K"}, "--heap 1K: must be from", 2);
  CliFails({"create", name, "--heap", "65T"}, "--heap 65T: must be from", 2);
  CliFails({"create", name, "--slots", "8"}, "power of two", 2);
  CliFails({"stats", name, "--json=yes"}, "takes no value", 2);
  CliFails({"get", name, "key", "-n", "-1"}, "invalid -n", 2);
  CliFails({"gc", name, "--deadline-ms", "soon"}, "invalid --deadline-ms", 2);
  EXPECT_FALSE(ShmExists(name)) << "a command-line error created a heap";

  // The size forms that are accepted.
  CliOk({"create", name, "--heap=64K", "--slots", "16"});
  const std::string json = CliOk({"stats", name, "--json"});
  EXPECT_EQ(JsonNumber(json, "heap_capacity"), 65536u);
  EXPECT_EQ(JsonNumber(json, "table_slots"), 16u);
  CliOk({"rm", name});
  CliOk({"create", name, "--heap", "1g", "--slots", "1M"});
  EXPECT_EQ(JsonNumber(CliOk({"stats", name, "--json"}), "heap_capacity"),
            uint64_t{1} << 30);
  // The library's own checks are operation failures (exit 1).
  CliFails({"create", name}, "already exists");
  CliOk({"rm", name});
  EXPECT_FALSE(ShmExists(name));
}

// ---------------------------------------------------------------------------
// Paths that are not regular files.

using testing::DirOf;
using testing::EntriesContaining;
using testing::kEveryPlant;
using testing::Plant;
using testing::PlantAt;
using testing::PlantName;
using testing::RemovePlant;
using testing::TypeAt;

constexpr std::chrono::seconds kHangDeadline{10};

// Every command that opens a heap name or a file, given a FIFO, a
// directory, a symbolic link or a character device there: one line saying
// what it is, exit 1, no hang; the object stays as it was. A heap name never
// follows a link (a link in /dev/shm is refused as a link); load follows a
// link to its FILE, to a target checked the same way, so a link to a FIFO
// is refused as a FIFO and a link to an image loads. save and load never
// replace what is at FILE or NAME; rm --force removes anything but a
// directory without opening it.
TEST_F(CliTest, NonRegularPathsFailAtOnceWithOneLine) {
  const std::string source = HeapName("plant-source");
  ASSERT_NO_FATAL_FAILURE(CreateAndFill(source));
  const std::string image = TempPath("plant-good.img");
  CliOk({"save", source, image});
  const std::string fifo_target = TempPath("plant-fifo-target");
  ASSERT_EQ(mkfifo(fifo_target.c_str(), 0600), 0);
  const std::string out = TempPath("plant-out.img");
  for (Plant p : kEveryPlant) {
    SCOPED_TRACE(PlantName(p));
    const std::string name = HeapName("plant");
    const std::string shm = "/dev/shm/" + name;
    RemovePlant(shm);
    if (!PlantAt(p, shm, "/dev/null")) {
      std::printf("skipping %s in /dev/shm: %s\n", PlantName(p),
                  std::strerror(errno));
      continue;
    }
    const mode_t type = TypeAt(shm);
    const std::string is = absl::StrCat("heap /", name, ": is ", PlantName(p),
                                        ", not a regular file");
    for (const std::vector<std::string>& call :
         std::vector<std::vector<std::string>>{{"stats", name},
                                               {"stats", name, "--json"},
                                               {"verify", name},
                                               {"gc", name},
                                               {"get", name, "key"},
                                               {"save", name, out}}) {
      CliFails(call, is, 1, kHangDeadline);
    }
    EXPECT_FALSE(FileExists(out));
    CliFails({"rm", name}, absl::StrCat(is, "; not removed"), 1, kHangDeadline);
    const std::string exists =
        absl::StrCat("heap /", name, " already exists (", PlantName(p), ")");
    CliFails({"create", name}, exists, 1, kHangDeadline);
    CliFails({"load", image, name}, exists, 1, kHangDeadline);
    EXPECT_EQ(TypeAt(shm), type) << "a command changed the planted object";
    if (p == Plant::kDirectory) {
      CliFails({"rm", name, "--force"}, "Is a directory", 1, kHangDeadline);
    } else {
      const Result r = Cli({"rm", name, "--force"}, kHangDeadline);
      EXPECT_EQ(r.code, 0) << Describe({"rm", name, "--force"}, r);
      EXPECT_EQ(TypeAt(shm), 0u);
    }
    RemovePlant(shm);
  }

  for (Plant p : kEveryPlant) {
    SCOPED_TRACE(absl::StrCat("FILE is ", PlantName(p)));
    const std::string name = HeapName("plant-load");
    const std::string file = TempPath("plant-file");
    RemovePlant(file);
    // The link points at a FIFO: load follows it and finds a FIFO.
    if (!PlantAt(p, file, fifo_target)) {
      std::printf("skipping FILE %s: %s\n", PlantName(p), std::strerror(errno));
      continue;
    }
    const mode_t type = TypeAt(file);
    const char* followed = p == Plant::kSymlink ? "a FIFO" : PlantName(p);
    CliFails(
        {"load", file, name},
        absl::StrCat("file ", file, ": is ", followed, ", not a regular file"),
        1, kHangDeadline);
    EXPECT_FALSE(ShmExists(name));
    CliFails(
        {"save", source, file},
        absl::StrCat("file ", file, " already exists (", PlantName(p), ")"), 1,
        kHangDeadline);
    EXPECT_EQ(TypeAt(file), type) << "a command changed the planted object";
    RemovePlant(file);
  }
  // /dev/null itself, and a dangling link (its target is not created).
  const std::string name = HeapName("plant-null");
  CliFails({"load", "/dev/null", name},
           "file /dev/null: is a character device, not a regular file", 1,
           kHangDeadline);
  CliFails({"save", source, "/dev/null"},
           "file /dev/null already exists (a character device)", 1,
           kHangDeadline);
  const std::string dangling = TempPath("plant-dangling");
  const std::string nowhere = TempPath("plant-nowhere");
  ASSERT_EQ(symlink(nowhere.c_str(), dangling.c_str()), 0);
  CliFails({"save", source, dangling},
           absl::StrCat("file ", dangling, " already exists (a symbolic link)"),
           1, kHangDeadline);
  EXPECT_FALSE(FileExists(nowhere)) << "save followed a dangling link";
  // A link to a real image is followed by load.
  const std::string link = TempPath("plant-link.img");
  ASSERT_EQ(symlink(image.c_str(), link.c_str()), 0);
  const Result r = Cli({"load", link, name}, kHangDeadline);
  EXPECT_EQ(r.code, 0) << Describe({"load", link, name}, r);
  EXPECT_NE(CliOk({"verify", name}).find(": ok ("), std::string::npos);
  // And the source heap is as it was.
  EXPECT_EQ(JsonNumber(CliOk({"stats", source, "--json"}), "live_blobs"),
            uint64_t{tools::testing::kSampleArrays});
}

// ---------------------------------------------------------------------------
// Signals and kills.

// A heap that takes tens of milliseconds to collect and to save: kBigKeys
// arrays of kBigFloats floats (32 MiB), the value of key k at version v
// being testing::ArrayFor(k, v).
constexpr int kBigKeys = 512;
constexpr int kBigFloats = 16384;

std::string BigKey(int k) { return absl::StrCat("big:", k); }

// What the big heap must hold, which every check compares against: each
// key's version and its values (kept, so that a check compares bytes
// rather than recomputing 8 M values, which under ASan took minutes).
struct BigModel {
  std::vector<uint64_t> versions;
  std::vector<std::vector<float>> values;
};

// Replaces every fourth key, at random, with its next version, so that a
// collection has dead bytes to reclaim and live blobs to slide down.
void Churn(Heap& heap, BigModel& model, std::mt19937& rng) {
  const int64_t dims[] = {kBigFloats};
  for (int i = 0; i < kBigKeys / 4; ++i) {
    const int k = static_cast<int>(rng() % kBigKeys);
    model.values[k] = testing::ArrayFor(k, ++model.versions[k], kBigFloats);
    absl::StatusOr<bool> r =
        heap.Replace<float>(BigKey(k), model.values[k], dims);
    ASSERT_TRUE(r.ok()) << r.status();
  }
}

// The heap `heap` (a fresh attach) verifies and holds exactly the model:
// every element of every key.
::testing::AssertionResult HoldsEveryValue(const absl::StatusOr<Heap>& heap,
                                           const BigModel& model) {
  if (!heap.ok()) {
    return ::testing::AssertionFailure() << "open: " << heap.status();
  }
  if (absl::Status s = heap->Verify(); !s.ok()) {
    return ::testing::AssertionFailure() << "Verify: " << s;
  }
  if (heap->stats().live_blobs != uint64_t{kBigKeys}) {
    return ::testing::AssertionFailure()
           << heap->stats().live_blobs << " live blobs, not " << kBigKeys;
  }
  for (int k = 0; k < kBigKeys; ++k) {
    absl::StatusOr<ArrayView<float>> v = heap->Get<float>(BigKey(k));
    if (!v.ok()) return ::testing::AssertionFailure() << v.status();
    const std::vector<float>& want = model.values[k];
    if (v->size() != kBigFloats) {
      return ::testing::AssertionFailure() << BigKey(k) << ": " << v->size();
    }
    if (std::memcmp(v->data(), want.data(), sizeof(float) * kBigFloats) == 0) {
      continue;
    }
    for (int j = 0; j < kBigFloats; ++j) {
      if ((*v)(j) != want[j]) {
        return ::testing::AssertionFailure()
               << BigKey(k) << "[" << j << "] = " << (*v)(j) << ", version "
               << model.versions[k] << " has " << want[j];
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// Creates heap `name` with the CLI (256 MiB, 4K slots) and fills it through
// the library with version 0 of every big key; `writer` is left attached
// (holding no view) to churn it.
void CreateBig(const std::string& name, BigModel* model,
               absl::StatusOr<Heap>* writer) {
  CliOk({"create", name, "--heap", "256M", "--slots", "4K"});
  *writer = Heap::OpenNamed(name);
  ASSERT_TRUE(writer->ok()) << writer->status();
  model->versions.assign(kBigKeys, 0);
  model->values.resize(kBigKeys);
  const int64_t dims[] = {kBigFloats};
  for (int k = 0; k < kBigKeys; ++k) {
    model->values[k] = testing::ArrayFor(k, 0, kBigFloats);
    absl::StatusOr<bool> r =
        (*writer)->Add<float>(BigKey(k), model->values[k], dims);
    ASSERT_TRUE(r.ok() && *r) << r.status();
  }
}

const char* SignalName(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGKILL";
}

// What a command did with a signal sent at a random moment.
struct SignalOutcomes {
  int finished = 0;  // exit 0: the signal came too late to matter
  int stopped = 0;   // held back, then acted on: one line, died by it
  int killed = 0;    // died by it before (or after) holding signals back
};

// The wall time of the quickest of three runs of `args` (each must
// succeed; `next` gives each run its arguments), for the window in which
// RunAndSignal sends its signal. The quickest, since the first run of a
// kind pays for cold caches.
double Calibrate(const std::function<std::vector<std::string>(int)>& next) {
  double best = 1e9;
  for (int i = 0; i < 3; ++i) {
    const std::vector<std::string> args = next(i);
    const Result r = Cli(args);
    EXPECT_EQ(r.code, 0) << Describe(args, r);
    best = std::min(best, r.seconds);
  }
  std::printf("%s: %.1f ms\n", next(0)[0].c_str(), best * 1e3);
  return best;
}

// Sends `sig` to a run of `args` at a random moment of its life: 0 to
// `duration` (from Calibrate) after it starts.
Result RunAndSignal(const std::vector<std::string>& args, int sig,
                    double duration, std::mt19937& rng) {
  std::uniform_real_distribution<double> when(0, duration);
  Running running = StartCli(args);
  std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
  kill(running.pid, sig);
  return WaitCli(running);
}

// Classifies the result of a run signalled with `sig`, checking the CLI's
// contract: exit 0, or death by `sig` with nothing or one line
// "shmheap: COMMAND: SIG...: ..." on stderr.
void Classify(const std::vector<std::string>& args, const Result& r, int sig,
              SignalOutcomes* outcomes) {
  const std::string what = Describe(args, r);
  ASSERT_FALSE(r.timed_out) << what;
  if (r.code == 0) {
    ++outcomes->finished;
    return;
  }
  ASSERT_EQ(r.code, 1000 + sig) << what;
  if (r.err.empty()) {
    ++outcomes->killed;
    return;
  }
  ++outcomes->stopped;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << what;
  const std::string prefix =
      absl::StrCat("shmheap: ", args[0], ": ", SignalName(sig), ": ");
  EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << what;
}

void PrintOutcomes(const std::string& what, const SignalOutcomes& o) {
  std::printf(
      "%s: %d finished, %d stopped after holding the signal back, %d "
      "killed before or after\n",
      what.c_str(), o.finished, o.stopped, o.killed);
}

constexpr int kSignalTries = 20;

// SIGINT and SIGTERM at random moments of `shmheap gc`, 20 of each, each
// after a churn that leaves a quarter of the 32 MiB heap dead: the
// collection is never cut short (a collector killed while compacting used to
// leave the heap unusable), so after every try the heap attaches, verifies
// and holds every value of the model. Even tries signal at a random moment
// of the command's life; odd tries at a random moment of the collection
// itself (after the gc epoch turns odd), since most of a short gc's life is
// exec, attach and exit. The test requires that signals did land inside.
TEST_F(CliTest, SignalsDuringGcLetTheCollectionFinish) {
  const std::string name = HeapName("signal-gc");
  BigModel model;
  absl::StatusOr<Heap> writer;
  ASSERT_NO_FATAL_FAILURE(CreateBig(name, &model, &writer));
  std::mt19937 rng(1234);
  const auto& epoch = writer->segment().header().gc_epoch;
  const double duration = Calibrate([&](int) {
    Churn(*writer, model, rng);
    return std::vector<std::string>{"gc", name};
  });
  for (int sig : {SIGINT, SIGTERM}) {
    SignalOutcomes outcomes;
    for (int i = 0; i < kSignalTries; ++i) {
      SCOPED_TRACE(absl::StrCat(SignalName(sig), " try ", i));
      ASSERT_NO_FATAL_FAILURE(Churn(*writer, model, rng));
      const std::vector<std::string> args = {"gc", name};
      Result r;
      if (i % 2 == 0) {
        r = RunAndSignal(args, sig, duration, rng);
      } else {
        Running running = StartCli(args);
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::seconds(30);
        // The parity only times the signal, and orders nothing this test
        // reads: acquire is more than needed and costs nothing here.
        while ((epoch.load(std::memory_order_acquire) & 1) == 0 &&
               std::chrono::steady_clock::now() < deadline) {
          std::this_thread::yield();
        }
        // Within half a millisecond of the world stopping: the collection
        // of this heap takes a few ms at most (13.5 ms for the whole
        // command in one run), and a later signal, which finds it done,
        // tests nothing (up to 5 ms left only 4 of 20 tries inside it in a
        // fresh-clone CI run).
        std::uniform_real_distribution<double> when(0, 0.0005);
        std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
        kill(running.pid, sig);
        r = WaitCli(running);
      }
      ASSERT_NO_FATAL_FAILURE(Classify(args, r, sig, &outcomes));
      if (!r.err.empty()) {
        EXPECT_NE(r.err.find("stopped after the collection finished; heap /" +
                             name + " is intact"),
                  std::string::npos)
            << Describe(args, r);
      }
      ASSERT_TRUE(HoldsEveryValue(Heap::OpenNamed(name), model));
    }
    PrintOutcomes(absl::StrCat("gc, ", SignalName(sig)), outcomes);
    // A gc that does not hold signals back dies at once by each one: no
    // try is ever "stopped".
    EXPECT_GE(outcomes.stopped, 5)
        << "too few signals were held back until the collection finished";
  }
}

// SIGINT and SIGTERM at random moments of `shmheap save`, 20 of each: the
// source heap always verifies and keeps every value; a save stopped by the
// signal wrote no FILE; a FILE that exists is a complete image (Verify and
// every value); no temporary is ever left beside FILE.
TEST_F(CliTest, SignalsDuringSaveLeaveNoFileAndTheHeapIntact) {
  const std::string name = HeapName("signal-save");
  BigModel model;
  absl::StatusOr<Heap> writer;
  ASSERT_NO_FATAL_FAILURE(CreateBig(name, &model, &writer));
  std::mt19937 rng(5678);
  const double duration = Calibrate([&](int i) {
    Churn(*writer, model, rng);
    return std::vector<std::string>{
        "save", name, TempPath(absl::StrCat("signal-save-calibration-", i))};
  });
  for (int sig : {SIGINT, SIGTERM}) {
    SignalOutcomes outcomes;
    for (int i = 0; i < kSignalTries; ++i) {
      SCOPED_TRACE(absl::StrCat(SignalName(sig), " try ", i));
      ASSERT_NO_FATAL_FAILURE(Churn(*writer, model, rng));
      const std::string file =
          TempPath(absl::StrCat("signal-save-", sig, "-", i));
      const std::vector<std::string> args = {"save", name, file};
      const Result r = RunAndSignal(args, sig, duration, rng);
      ASSERT_NO_FATAL_FAILURE(Classify(args, r, sig, &outcomes));
      if (r.err.find("nothing saved") != std::string::npos) {
        EXPECT_FALSE(FileExists(file)) << Describe(args, r);
      }
      if (r.code == 0 || r.err.find("was saved") != std::string::npos) {
        EXPECT_TRUE(FileExists(file)) << Describe(args, r);
      }
      if (FileExists(file)) {
        EXPECT_TRUE(HoldsEveryValue(Heap::OpenFile(file), model))
            << Describe(args, r);
      }
      EXPECT_EQ(EntriesContaining(DirOf(file), ".tmp-"),
                std::vector<std::string>{})
          << "a temporary was left behind";
      ASSERT_TRUE(HoldsEveryValue(Heap::OpenNamed(name), model));
    }
    PrintOutcomes(absl::StrCat("save, ", SignalName(sig)), outcomes);
    EXPECT_GE(outcomes.stopped, 3)
        << "too few signals were held back until the save stopped";
  }
}

// SIGKILL at random moments of `shmheap save`, 20 times, each after a
// churn, so that a kill may land in its collection as well as in its copy:
// FILE either does not exist or is a complete image; no temporary is left;
// the source heap attaches (which finishes an interrupted collection),
// verifies and holds every value; the next save to the same FILE succeeds.
TEST_F(CliTest, SaveKilledAtRandomMomentsLeavesNoFileOrAWholeOne) {
  const std::string name = HeapName("kill-save");
  BigModel model;
  absl::StatusOr<Heap> writer;
  ASSERT_NO_FATAL_FAILURE(CreateBig(name, &model, &writer));
  std::mt19937 rng(91011);
  const double duration = Calibrate([&](int i) {
    Churn(*writer, model, rng);
    return std::vector<std::string>{
        "save", name, TempPath(absl::StrCat("kill-save-calibration-", i))};
  });
  int absent = 0, complete = 0;
  for (int i = 0; i < kSignalTries; ++i) {
    SCOPED_TRACE(absl::StrCat("try ", i));
    ASSERT_NO_FATAL_FAILURE(Churn(*writer, model, rng));
    const std::string file = TempPath(absl::StrCat("kill-save-", i));
    const std::vector<std::string> args = {"save", name, file};
    // Even tries within the first half of a save's life, odd ones past its
    // end too, so that some kills come after the file is published.
    const Result r =
        RunAndSignal(args, SIGKILL, (i % 2 == 0 ? 0.5 : 1.5) * duration, rng);
    ASSERT_FALSE(r.timed_out);
    if (FileExists(file)) {
      ++complete;
      EXPECT_TRUE(HoldsEveryValue(Heap::OpenFile(file), model))
          << Describe(args, r);
    } else {
      ++absent;
    }
    EXPECT_EQ(EntriesContaining(DirOf(file), ".tmp-"),
              std::vector<std::string>{})
        << "a temporary was left behind";
    ASSERT_TRUE(HoldsEveryValue(Heap::OpenNamed(name), model));
    if (!FileExists(file)) CliOk(args);
  }
  std::printf("save SIGKILLed: %d left no file, %d a whole one\n", absent,
              complete);
  EXPECT_GE(absent, 3) << "too few kills landed before the save ended";
}

// SIGKILL at random moments of `shmheap load`, 20 times: NAME either does
// not exist or is the complete heap (it attaches, verifies and holds every
// value); nothing else is left in /dev/shm; a load after a kill succeeds.
TEST_F(CliTest, LoadKilledAtRandomMomentsLeavesNothingOrTheWholeHeap) {
  const std::string source = HeapName("kill-load-source");
  BigModel model;
  {
    absl::StatusOr<Heap> writer;
    ASSERT_NO_FATAL_FAILURE(CreateBig(source, &model, &writer));
  }
  const std::string image = TempPath("kill-load.img");
  CliOk({"save", source, image});
  ASSERT_TRUE(Heap::UnlinkNamed(source).ok());
  const double duration = Calibrate([&](int i) {
    return std::vector<std::string>{
        "load", image, HeapName(absl::StrCat("kill-load-calibration-", i))};
  });
  std::mt19937 rng(121314);
  int absent = 0, complete = 0;
  for (int i = 0; i < kSignalTries; ++i) {
    SCOPED_TRACE(absl::StrCat("try ", i));
    const std::string name = HeapName(absl::StrCat("kill-load-", i));
    const std::vector<std::string> args = {"load", image, name};
    // Even tries within a load's life, odd ones past its end too, so that
    // some kills come after the heap is published.
    const Result r =
        RunAndSignal(args, SIGKILL, (i % 2 == 0 ? 1.0 : 1.5) * duration, rng);
    ASSERT_FALSE(r.timed_out);
    if (ShmExists(name)) {
      ++complete;
      EXPECT_TRUE(HoldsEveryValue(Heap::OpenNamed(name), model))
          << Describe(args, r);
    } else {
      ++absent;
      EXPECT_NE(r.code, 0) << Describe(args, r);
      CliOk(args);
      EXPECT_TRUE(HoldsEveryValue(Heap::OpenNamed(name), model));
    }
    EXPECT_EQ(EntriesContaining("/dev/shm", name),
              std::vector<std::string>{name})
        << "something besides the heap was left in /dev/shm";
    ASSERT_TRUE(Heap::UnlinkNamed(name).ok());
  }
  std::printf("load SIGKILLed: %d left no heap, %d a whole one\n", absent,
              complete);
  EXPECT_GE(absent, 3) << "too few kills landed before the load ended";
}

}  // namespace
}  // namespace shmheap

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: cli_test PATH_TO_shmheap\n");
    return 2;
  }
  shmheap::g_cli = argv[1];
  return RUN_ALL_TESTS();
}
