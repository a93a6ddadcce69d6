// The typecheck demo as a library: a type-checker-shaped job over a tree of
// C/C++ headers, run by a master and forked workers that share every result
// through one shmheap::Heap. examples/typecheck.cc is its command line;
// examples/typecheck_test.cc calls RunAnalysis directly.
//
// Phases (each one a fork of N workers that the master waits for; with
// Options::serial the same worker code runs in the master, N = 1):
//
//   parse    every file: tokenize (typecheck_scan.h), resolve its includes,
//            publish three arrays;
//   resolve  every file: read the include and definition arrays of the
//            files it reaches in place (ArrayView, no copy; each worker reads
//            a file's arrays once and keeps them as local file indexes and
//            dense identifier numbers), compute the transitive closure of its
//            includes and the number of distinct identifiers visible in it,
//            publish one array (built in place with Reserve);
//   recheck  a seeded fraction of files counts as edited: the master finds
//            every file that includes one (directly or not) by walking the
//            heap's dependency table, where the parse added each resolved
//            include as a reverse edge (Heap::AddDep(included, includer)),
//            removes the edited files' entries and those files' closures;
//            workers re-parse the edited files and re-resolve the removed
//            closures, then the master runs Heap::Collect;
//   check    (parallel runs) the whole analysis again in the master alone, on
//            a second heap; its digest must equal the parallel run's, before
//            and after the recheck.
//
// Published arrays, for each file P (P is the path as listed: a root
// argument joined with the path below it, lexically normalised):
//
//   file:P#tokens    int32 [kNumTokenKinds]  token-kind histogram
//   file:P#defs      int64 [d]   StableHash of each defined identifier,
//                                sorted, unique
//   file:P#includes  int64 [i]   StableHash of the path of each resolved
//                                include, in order of first appearance,
//                                unique; unresolved includes are left out
//                                (and counted in the tallies)
//   closure:P        int64 [1+c] element 0: the number of distinct identifier
//                                hashes in the defs of the closure;
//                                elements 1..c: StableHash of every file in
//                                the closure, P itself included, sorted
//
// The closure is reflexive and transitive, so include cycles (and include
// guards, which the scanner does not evaluate) need no special case: the
// search marks files as it reaches them.
//
// Include resolution is lexical (no stat): a candidate path names a file
// only if it is one of the files being analysed.
//   #include "x"       the including file's directory, then the search path
//   #include <x>       the search path
//   #include_next <x>  the search-path directories after the first one that
//                      contains the including file (all of them if none
//                      does); the including file itself is never the result
// The search path is Options::search_dirs, or the roots when that is empty.
//
// Work distribution lives in the heap too. A phase cuts its work list into
// batches and hands them out through one shared counter,
// Heap::FetchAdd("next:<phase>", 1) (hh_shared's hh_counter_next): each call
// returns a batch number no other worker got, and a worker stops when the
// number passes the last batch. The master's progress bar reads the counter
// (FetchAdd of 0). Each worker ends by publishing its tallies as
// "tally:<phase>:<w>" (int64 [kNumTallies]) or, when it fails, its error
// message as "error:<phase>:<w>" (char); the master reads them, then removes
// every counter and tally key, so after each phase the heap holds results
// only.
//
// Stopping (Ctrl-C): with HandleStopSignals installed, SIGINT or SIGTERM
// sets the heap's stop flag (Heap::RequestStop). Every worker polls it
// (Heap::StopRequested, one load) before each file, so it finishes the file
// it is on, publishes its tallies and exits; the phase reports how many
// files it did, and RunAnalysis returns the Result so far with `stopped`
// set, skipping the phases after it. A second signal ends the process at
// once (the default action).
//
// Digest: XXH3-64 over, for each file in sorted order and each of its four
// keys in the order above, the key, the kind, the layout, the dims and the
// payload bytes. Hashes in published arrays use seed 0 (StableHash), never
// the heap's random seed, so any two runs over the same tree agree.
//
// Processes: RunAnalysis forks; it must be called from a single-threaded
// process. Workers leave the heap (destroying their Heap) and _exit.

#ifndef SHMHEAP_EXAMPLES_TYPECHECK_LIB_H_
#define SHMHEAP_EXAMPLES_TYPECHECK_LIB_H_

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "examples/typecheck_paths.h"
#include "examples/typecheck_scan.h"
#include "shmheap.h"

namespace typecheck {

// What each worker counts during a phase (summed by the master).
enum Tally : int {
  kFiles,               // work items done
  kBytesRead,           // bytes read from disk (parse)
  kTokens,              // tokens counted (parse)
  kIncludesResolved,    // include directives that named an analysed file
  kIncludesUnresolved,  // the others (missing, outside the tree, computed)
  kDefs,                // distinct identifiers defined, summed over files
  kClosureFiles,        // closure sizes, summed over files (resolve)
  kVisibleIdentifiers,  // visible identifier counts, summed (resolve)
  kBytesInPlace,        // bytes of published arrays read in place (resolve)
  kFilesUnreadable,     // files that could not be read, analysed as empty
  kDepsAdded,           // reverse include edges newly stored (parse)
  kNumTallies
};

struct Options {
  // Trees to analyse: every regular file below them (symbolic links to
  // regular files included, symbolic links to directories not followed).
  std::vector<std::string> roots;
  // Where #include looks after the including file's directory; empty: the
  // roots.
  std::vector<std::string> search_dirs;
  int workers = 1;
  // Everything in this process (no fork); the reference for the check.
  bool serial = false;
  // Fraction of files (0..1) the recheck treats as edited, chosen by
  // StableHash of "<change_seed>:<path>": the round(change * files) lowest.
  double change = 0.1;
  uint64_t change_seed = 1;
  // When not empty: exactly these files (paths as listed) are edited, and
  // `change` is ignored.
  std::vector<std::string> edited;
  // After a parallel run, run the serial reference and compare digests.
  bool check = true;
  // Heap geometry; the table is sized from the number of files.
  uint64_t heap_bytes = uint64_t{4} << 30;  // reserved, not committed
  // Keep the heap in Result::heap (tests inspect it).
  bool keep_heap = false;
  // Called now and then during each phase with the files claimed so far.
  std::function<void(std::string_view phase, int64_t done, int64_t total)>
      progress;
  // Tests only: runs at the start of every worker (in the forked child, or
  // in this process with `serial`); an error fails that worker.
  std::function<absl::Status(std::string_view phase, int worker)>
      testing_worker_hook;
};

struct PhaseReport {
  std::string name;
  double seconds = 0;
  int64_t files = 0;  // work items
  // The phase's tallies summed over its workers ([kNumTallies]); empty for
  // the phases the master runs alone.
  std::vector<int64_t> tallies;
  // Work items each worker took through the counter.
  std::vector<int64_t> files_per_worker;
  // The first unreadable file's error, by path order ("" when none).
  std::string first_unreadable;
  // The phase was stopped (HandleStopSignals): `done` of `files` were done.
  bool stopped = false;
  int64_t done = 0;
};

struct Result {
  std::vector<std::string> files;  // analysed, sorted
  std::vector<std::string> search_dirs;
  // Directories below the roots that could not be listed (skipped), and
  // the first one's error; unreadable files are in tallies
  // [kFilesUnreadable] and in the parse's report.
  int64_t unlisted_dirs = 0;
  std::string first_unlisted;
  int workers = 0;
  // Tallies of the first parse and resolve (not the recheck).
  std::vector<int64_t> tallies;                     // [kNumTallies]
  std::array<int64_t, kNumTokenKinds> histogram{};  // summed over files
  std::vector<PhaseReport> phases;
  shmheap::Stats published;  // after parse and resolve, claims removed

  std::vector<std::string> edited;  // sorted
  // The files the recheck re-resolves: the edited files and every file
  // that includes one, directly or not, from the dependency table; sorted.
  std::vector<std::string> dependents;
  std::vector<std::string> removed_keys;  // by the recheck, sorted
  uint64_t removed_bytes = 0;             // live bytes the removals freed
  uint64_t dead_bytes_before_collect = 0;
  shmheap::GcReport gc;
  shmheap::Stats final_stats;  // after the recheck's Collect
  absl::Status verify;         // Heap::Verify after the Collect

  uint64_t digest = 0;                    // after parse and resolve
  uint64_t digest_recheck = 0;            // after the recheck
  std::optional<uint64_t> digest_serial;  // the check phase's
  bool digests_match() const {
    return digest == digest_recheck &&
           (!digest_serial.has_value() || *digest_serial == digest);
  }

  std::optional<shmheap::Heap> heap;  // with Options::keep_heap

  // A signal stopped the run in phase `stopped_in` (its report is the last
  // in `phases`; a stop in the serial reference is "check:<phase>"). The
  // phases after it did not run, and the digests and Verify are not set.
  bool stopped = false;
  std::string stopped_in;
};

// Runs every phase. Errors: kInvalidArgument for bad options; kNotFound for
// a root that is not a directory or holds no files; a worker's failure
// (kInternal naming the worker and its message); heap errors as returned.
// Digest mismatches and a failed Verify are reported in the Result.
absl::StatusOr<Result> RunAnalysis(const Options& options);

// The key names, for tests and tools.
std::string TokensKey(std::string_view path);
std::string DefsKey(std::string_view path);
std::string IncludesKey(std::string_view path);
std::string ClosureKey(std::string_view path);

// The digest of the four arrays of each of `files` in `heap`.
absl::StatusOr<uint64_t> Digest(const shmheap::Heap& heap,
                                const std::vector<std::string>& files);

// Makes SIGINT and SIGTERM stop a run (see "Stopping" above) instead of
// ending the process; process-wide, for the rest of the process's life. A
// signal this process ignores (a background job's SIGINT) stays ignored.
// Call it before RunAnalysis, from a single-threaded process.
void HandleStopSignals();

// The number of CPUs this process may run on.
int DefaultWorkers();

}  // namespace typecheck

#endif  // SHMHEAP_EXAMPLES_TYPECHECK_LIB_H_
