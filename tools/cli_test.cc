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
//    command-line errors exit 2 with one line and change nothing.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/strings.h"
#include "shmheap.h"
#include "tools/image.h"
#include "tools/sample_arrays.h"

namespace shmheap {
namespace {

std::string g_cli;  // path of the shmheap binary (argv[1])

struct Result {
  int code = -1;  // exit status, or 1000 + signal
  std::string out, err;
};

// Runs the CLI with `args`, capturing stdout and stderr.
Result Cli(const std::vector<std::string>& args) {
  std::vector<std::string> strings = {g_cli};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return {};
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);  // dup2 clears O_CLOEXEC on 1 and 2
    dup2(err[1], 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  Result r;
  // Both pipes at once, so that neither can fill up and stall the child.
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_pipes = 2;
  while (open_pipes > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
  return r;
}

std::string Describe(const std::vector<std::string>& args, const Result& r) {
  std::string s = "shmheap";
  for (const std::string& a : args) absl::StrAppend(&s, " '", a, "'");
  return absl::StrCat(s, "\n  exit ", r.code, "\n  stdout: ", r.out,
                      "\n  stderr: ", r.err);
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
              int code = 1) {
  const Result r = Cli(args);
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
        return tools::testing::WriteSampleArrays(*heap).ok() ? 0 : 3;
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
  const std::string text = CliOk({"stats", name});
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

TEST_F(CliTest, HelpEverywhereAndCommandLineErrors) {
  for (const std::vector<std::string>& call :
       std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
    EXPECT_EQ(CliOk(call).rfind("usage: shmheap COMMAND", 0), 0u);
  }
  for (const char* command :
       {"create", "ls", "stats", "verify", "gc", "get", "save", "load", "rm"}) {
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
  CliFails({"create", name, "--heap", "0"}, "heap_bytes must be");
  EXPECT_FALSE(ShmExists(name));
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
