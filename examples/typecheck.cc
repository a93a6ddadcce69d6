// typecheck: the README's main job. A master and forked workers analyse a
// tree of C/C++ headers the way a type checker's workers analyse a program,
// sharing every intermediate result through one shmheap::Heap: no pipes, no
// serialization, every array read in place. The phases, the keys and the
// arrays are described in examples/typecheck_lib.h.
//
//   bazel run //examples:typecheck                  # every file under
//   /usr/include bazel run //examples:typecheck -- DIR...        # other trees
//   bazel run //examples:typecheck -- --workers 8 --change 0.2 DIR
//
// Output: a progress bar per phase when stdout is a terminal (one plain line
// per finished phase otherwise), then a summary. Exit status: 0 when the
// parallel, rechecked and serial digests agree and Verify passes; 1 when the
// run failed or they do not; 2 for a usage error; 130 when Ctrl-C (SIGINT or
// SIGTERM) stopped it: the workers finish their file and exit, and the
// summary says what was done. Errors are one line on stderr.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "examples/typecheck_lib.h"
#include "heap/strings.h"
#include "shmheap.h"

namespace {

using shmheap::internal::Sv;

constexpr char kUsage[] =
    R"(usage: typecheck [options] [DIR...]

Analyses every file under each DIR (default: /usr/include, with gcc's
search path) with a master and forked workers that share their results
through one shmheap heap, then re-checks a fraction of the files as if they
had been edited, collects the heap and compares everything with a serial run.

options:
  --workers N   worker processes (default: the number of CPUs)
  --serial      run every phase in this process, no fork
  --change F    fraction of files the recheck treats as edited (default 0.1)
  --seed N      which files are edited (default 1)
  --no-check    skip the serial reference run
  -I DIR        search DIR for #include before the DIRs (repeatable)
  --help        this text
)";

struct Flags {
  typecheck::Options options;
  std::vector<std::string> include_dirs;
  bool help = false;
};

// Parses argv into `flags`; returns an error message, or "" when fine.
std::string ParseFlags(int argc, char** argv, Flags* flags) {
  typecheck::Options& o = flags->options;
  o.workers = typecheck::DefaultWorkers();
  bool only_dirs = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (only_dirs || arg.empty() || arg[0] != '-') {
      o.roots.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_dirs = true;
      continue;
    }
    std::string value;
    bool has_value = false;
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto take_value = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= argc) return false;
      value = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      flags->help = true;
    } else if (arg == "--serial") {
      o.serial = true;
    } else if (arg == "--no-check") {
      o.check = false;
    } else if (arg == "--workers") {
      int n = 0;
      if (!take_value() || !absl::SimpleAtoi(value, &n) || n < 1 || n > 1024) {
        return absl::StrCat("--workers needs a number from 1 to 1024, not \"",
                            value, "\"");
      }
      o.workers = n;
    } else if (arg == "--change") {
      double f = 0;
      if (!take_value() || !absl::SimpleAtod(value, &f) || !(f >= 0) ||
          !(f <= 1)) {
        return absl::StrCat("--change needs a fraction from 0 to 1, not \"",
                            value, "\"");
      }
      o.change = f;
    } else if (arg == "--seed") {
      uint64_t seed = 0;
      if (!take_value() || !absl::SimpleAtoi(value, &seed)) {
        return absl::StrCat("--seed needs a number, not \"", value, "\"");
      }
      o.change_seed = seed;
    } else if (arg == "-I" || arg.rfind("-I", 0) == 0) {
      if (arg.size() > 2) {
        value = arg.substr(2);
      } else if (!take_value()) {
        return "-I needs a directory";
      }
      flags->include_dirs.push_back(value);
    } else {
      return absl::StrCat("unknown flag ", arg);
    }
  }
  if (o.roots.empty()) {
    o.roots = {"/usr/include"};
    o.search_dirs = typecheck::SystemSearchDirs();
  }
  if (!flags->include_dirs.empty()) {
    o.search_dirs = flags->include_dirs;
    o.search_dirs.insert(o.search_dirs.end(), o.roots.begin(), o.roots.end());
  }
  return "";
}

// A byte count in the largest unit that keeps it >= 1: "94.3 MiB".
std::string Bytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (uint64_t{1} << 30))
    return absl::StrFormat("%.2f GiB", b / (1 << 30));
  if (bytes >= (1 << 20)) return absl::StrFormat("%.1f MiB", b / (1 << 20));
  if (bytes >= (1 << 10)) return absl::StrFormat("%.1f KiB", b / (1 << 10));
  return absl::StrCat(bytes, " B");
}

// `count` per second with a k/M prefix: "35.0 k", "1.43 M", "233".
std::string Rate(double count, double seconds) {
  if (seconds <= 0) return "-";
  const double r = count / seconds;
  if (r >= 1e6) return absl::StrFormat("%.2f M", r / 1e6);
  if (r >= 1e3) return absl::StrFormat("%.1f k", r / 1e3);
  return absl::StrFormat("%.0f", r);
}

std::string MibPerSecond(double bytes, double seconds) {
  if (seconds <= 0) return "-";
  return absl::StrFormat("%.0f MiB/s", bytes / 1048576.0 / seconds);
}

// A progress bar that redraws one line; or, when stdout is not a terminal,
// one line per finished phase.
class Progress {
 public:
  explicit Progress(bool tty) : tty_(tty) {}

  void Update(std::string_view phase, int64_t done, int64_t total) {
    if (phase != phase_) {
      if (tty_ && !phase_.empty() && !finished_) std::fputc('\n', stdout);
      phase_ = std::string(phase);
      finished_ = false;
      last_draw_ = {};
    }
    if (finished_) return;
    // At most 20 redraws a second: a serial run reports every batch.
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_draw_ < std::chrono::milliseconds(50)) {
      return;
    }
    last_draw_ = now;
    if (tty_) {
      constexpr int kWidth = 40;
      const int filled =
          total > 0 ? static_cast<int>(kWidth * done / total) : kWidth;
      std::printf("\r  %-18s [%s%s] %lld/%lld files", phase_.c_str(),
                  std::string(filled, '#').c_str(),
                  std::string(kWidth - filled, '.').c_str(),
                  static_cast<long long>(done), static_cast<long long>(total));
    }
    if (done >= total) {
      finished_ = true;
      if (tty_) {
        std::fputc('\n', stdout);
      } else {
        std::printf("  %s: %lld files done\n", phase_.c_str(),
                    static_cast<long long>(total));
      }
    }
    std::fflush(stdout);
  }

 private:
  bool tty_;
  std::string phase_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

// The table of phases: wall time, files per second and what each moved.
void PrintPhases(const typecheck::Result& r) {
  using namespace typecheck;
  std::printf("\n  %-20s %9s %12s %14s\n", "phase", "wall", "files/s",
              "throughput");
  for (const PhaseReport& p : r.phases) {
    // What each phase moves: bytes read from disk for the parses, closure
    // members walked for the resolves, bytes compacted for the collection.
    std::string throughput;
    if (p.name == "parse" || p.name == "reparse" ||
        p.name == "check (serial)") {
      throughput = absl::StrCat(
          MibPerSecond(static_cast<double>(p.tallies[kBytesRead]), p.seconds),
          " read");
    } else if (p.name == "resolve" || p.name == "reresolve") {
      throughput = absl::StrCat(
          Rate(static_cast<double>(p.tallies[kClosureFiles]), p.seconds),
          " closure members/s, ", Bytes(p.tallies[kBytesInPlace]),
          " read in place");
    } else if (p.name == "collect") {
      throughput = absl::StrCat(
          MibPerSecond(static_cast<double>(r.gc.bytes_moved), p.seconds),
          " compacted");
    }
    // A stopped phase did `done` of its files.
    const int64_t count = p.stopped ? p.done : p.files;
    const std::string per_second =
        count > 0
            ? absl::StrCat(Rate(static_cast<double>(count), p.seconds), "/s")
            : "";
    const std::string name =
        p.stopped ? absl::StrCat(p.name, " (stopped)") : p.name;
    std::printf("  %-20s %7.3f s %12s   %s\n", name.c_str(), p.seconds,
                per_second.c_str(), throughput.c_str());
  }
}

void PrintSummary(const typecheck::Result& r) {
  using namespace typecheck;
  const auto& t = r.tallies;
  const double files = static_cast<double>(r.files.size());
  std::printf("\nsummary\n");
  int64_t tokens = 0;
  for (int64_t c : r.histogram) tokens += c;
  std::string mix;
  for (int k = 0; k < kNumTokenKinds; ++k) {
    if (tokens == 0) break;
    absl::StrAppend(&mix, k ? ", " : "", Sv(TokenKindName(k)), " ",
                    absl::StrFormat("%.1f%%", 100.0 * r.histogram[k] / tokens));
  }
  std::printf("  files        %zu, %s read, %lld tokens (%s)\n", r.files.size(),
              Bytes(t[kBytesRead]).c_str(), static_cast<long long>(tokens),
              mix.c_str());
  if (t[kFilesUnreadable] > 0) {
    std::printf("  unreadable   %lld files, analysed as empty (first: %s)\n",
                static_cast<long long>(t[kFilesUnreadable]),
                r.phases.empty() ? "" : r.phases[0].first_unreadable.c_str());
  }
  if (r.unlisted_dirs > 0) {
    std::printf("  unlisted     %lld directories skipped (first: %s)\n",
                static_cast<long long>(r.unlisted_dirs),
                r.first_unlisted.c_str());
  }
  std::printf("  includes     %lld resolved, %lld unresolved\n",
              static_cast<long long>(t[kIncludesResolved]),
              static_cast<long long>(t[kIncludesUnresolved]));
  std::printf(
      "  closures     %.1f files and %.0f visible identifiers per file on "
      "average; %lld identifiers defined in all\n",
      t[kClosureFiles] / files, t[kVisibleIdentifiers] / files,
      static_cast<long long>(t[kDefs]));
  std::printf(
      "  published    %llu blobs, %s live (table: %llu of %llu slots)\n",
      static_cast<unsigned long long>(r.published.live_blobs),
      Bytes(r.published.live_bytes).c_str(),
      static_cast<unsigned long long>(r.published.live_blobs),
      static_cast<unsigned long long>(r.published.table_slots));
  std::printf(
      "  deps         %llu include edges in the dependency table (%llu of "
      "%llu slots)\n",
      static_cast<unsigned long long>(t[kDepsAdded]),
      static_cast<unsigned long long>(r.published.dep_used),
      static_cast<unsigned long long>(r.published.dep_slots));
  std::string balance;
  if (!r.phases.empty()) {
    for (int64_t f : r.phases[0].files_per_worker) {
      absl::StrAppend(&balance, " ", f);
    }
  }
  std::printf("  workers      %d %s; files parsed per worker:%s\n", r.workers,
              r.workers == 1 ? "(serial: no fork)" : "(forked per phase)",
              balance.c_str());
  PrintPhases(r);
  size_t closures = 0;
  for (const std::string& k : r.removed_keys) {
    closures += k.rfind("closure:", 0) == 0;
  }
  std::printf(
      "\n  recheck      %zu files edited, %zu dependents found in the "
      "dependency table: removed %zu keys (%zu closures), %s live\n",
      r.edited.size(), r.dependents.size(), r.removed_keys.size(), closures,
      Bytes(r.removed_bytes).c_str());
  std::printf(
      "  collection   heap %s -> %s (reclaimed %s; %s were dead), "
      "%llu blobs / %s moved, %llu tombstones cleared, %.3f s\n",
      Bytes(r.gc.bytes_before).c_str(), Bytes(r.gc.bytes_after).c_str(),
      Bytes(r.gc.bytes_before - r.gc.bytes_after).c_str(),
      Bytes(r.dead_bytes_before_collect).c_str(),
      static_cast<unsigned long long>(r.gc.blobs_moved),
      Bytes(r.gc.bytes_moved).c_str(),
      static_cast<unsigned long long>(r.gc.tombstones_cleared), r.gc.seconds);
  std::printf("  digest       %016llx first pass, %016llx after recheck",
              static_cast<unsigned long long>(r.digest),
              static_cast<unsigned long long>(r.digest_recheck));
  if (r.digest_serial) {
    std::printf(", %016llx serial reference",
                static_cast<unsigned long long>(*r.digest_serial));
  }
  std::printf(": %s\n", r.digests_match() ? "identical" : "MISMATCH");
  std::printf("  verify       %s\n",
              r.verify.ok() ? "OK" : std::string(r.verify.message()).c_str());
}

// A run stopped by Ctrl-C: what was done, and what was not.
void PrintStopped(const typecheck::Result& r) {
  const typecheck::PhaseReport& last = r.phases.back();
  std::printf("\nstopped\n");
  std::printf(
      "  files        %zu analysed; the stop came in %s, with %lld of its "
      "%lld files done\n",
      r.files.size(), r.stopped_in.c_str(), static_cast<long long>(last.done),
      static_cast<long long>(last.files));
  PrintPhases(r);
  if (r.stopped_in.rfind("check:", 0) == 0) {
    // The parallel run and its recheck were complete.
    std::printf(
        "\n  the parallel run and its recheck were complete (digest "
        "%016llx, verify %s); the serial reference was stopped, so the "
        "digests were not compared\n",
        static_cast<unsigned long long>(r.digest_recheck),
        r.verify.ok() ? "OK" : std::string(r.verify.message()).c_str());
    return;
  }
  std::printf(
      "\n  each worker finished the file it was on and exited; the phases "
      "after %s did not run, and nothing was compared or verified\n",
      r.stopped_in.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // `bazel run` starts the program in its runfiles; relative DIRs mean the
  // directory the user ran it from.
  if (const char* wd = std::getenv("BUILD_WORKING_DIRECTORY")) {
    if (chdir(wd) != 0) {
      std::fprintf(stderr, "typecheck: cannot enter %s\n", wd);
      return 1;
    }
  }
  Flags flags;
  if (const std::string error = ParseFlags(argc, argv, &flags);
      !error.empty()) {
    std::fprintf(stderr, "typecheck: usage error: %s (see --help)\n",
                 error.c_str());
    return 2;
  }
  if (flags.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  typecheck::Options& o = flags.options;
  // Ctrl-C stops the workers through the heap's stop flag (before the
  // first line, so that a signal from then on is always a clean stop).
  typecheck::HandleStopSignals();
  Progress progress(isatty(STDOUT_FILENO) != 0);
  o.progress = [&progress](std::string_view phase, int64_t done,
                           int64_t total) {
    progress.Update(phase, done, total);
  };
  std::string roots;
  for (const std::string& r : o.roots) absl::StrAppend(&roots, " ", r);
  std::printf(
      "typecheck:%s, %s\n", roots.c_str(),
      o.serial ? "serial" : absl::StrCat(o.workers, " workers").c_str());
  if (!o.search_dirs.empty()) {
    std::string dirs;
    for (const std::string& d : o.search_dirs) absl::StrAppend(&dirs, " ", d);
    std::printf("  search path:%s\n", dirs.c_str());
  }
  std::fflush(stdout);

  absl::StatusOr<typecheck::Result> result = typecheck::RunAnalysis(o);
  if (!result.ok()) {
    std::fflush(stdout);
    std::fprintf(stderr, "typecheck: %s\n",
                 std::string(result.status().message()).c_str());
    return 1;
  }
  if (result->stopped) {
    if (isatty(STDOUT_FILENO)) std::fputc('\n', stdout);  // ends the bar
    PrintStopped(*result);
    std::fflush(stdout);
    std::fprintf(stderr, "typecheck: stopped by a signal in %s\n",
                 result->stopped_in.c_str());
    return 130;  // 128 + SIGINT: what a shell reports for Ctrl-C
  }
  PrintSummary(*result);
  std::fflush(stdout);
  if (!result->digests_match()) {
    std::fprintf(stderr, "typecheck: digests differ\n");
    return 1;
  }
  if (!result->verify.ok()) {
    std::fprintf(stderr, "typecheck: verify failed: %s\n",
                 std::string(result->verify.message()).c_str());
    return 1;
  }
  return 0;
}
