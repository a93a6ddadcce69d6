// The typecheck demo's files and paths: which files a run analyses, how an
// #include names one of them, and reading one. No heap, no processes: the
// master builds the FileIndex before it forks, so every worker has a copy.
// The rules are in typecheck_lib.h ("Include resolution").

#ifndef SHMHEAP_EXAMPLES_TYPECHECK_PATHS_H_
#define SHMHEAP_EXAMPLES_TYPECHECK_PATHS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "examples/typecheck_scan.h"

namespace typecheck {

// The analysed files: sorted paths, their StableHash, and both lookups.
// Built by the master before any fork, so every worker has its own copy.
struct FileIndex {
  std::vector<std::string> paths;
  std::vector<int64_t> hashes;
  std::vector<std::string> search_dirs;
  std::unordered_map<std::string_view, int32_t> by_path;
  std::unordered_map<int64_t, int32_t> by_hash;

  // Directories below the roots that could not be listed (permissions, or
  // an error while reading them): their files are not analysed.
  int64_t unlisted_dirs = 0;
  std::string first_unlisted;  // "DIR: why", when unlisted_dirs > 0

  int32_t Find(const std::string& path) const {
    auto it = by_path.find(path);
    return it == by_path.end() ? -1 : it->second;
  }
};

// Lists every regular file below `roots` (symbolic links to regular files
// included, symbolic links to directories not followed, so a link cycle
// cannot make the walk endless), sorted, and indexes them; `search_dirs`
// (empty: the roots) become the index's search path. A subdirectory that
// cannot be listed is skipped and counted. Errors: kNotFound for a root
// that is not a directory, or when no file is left (the message counts
// the directories that could not be listed); kPermissionDenied for a root
// that cannot be listed; kFailedPrecondition when two paths share a
// StableHash.
absl::StatusOr<FileIndex> BuildIndex(
    const std::vector<std::string>& roots,
    const std::vector<std::string>& search_dirs);

// The index of the file `inc` names when `includer` contains it, or -1.
int32_t ResolveInclude(const FileIndex& index, int32_t includer,
                       const IncludeDirective& inc);

// Reads the whole file at `path` into `out` (what is there if it shrinks
// meanwhile). Errors: kUnavailable naming the path and errno's text.
absl::Status ReadFile(const std::string& path, std::string* out);

// Lexically normalises a path: collapses "//", removes "." and resolves
// ".." against the preceding component ("a/../b" is "b"; a leading ".." is
// kept). Never touches the filesystem.
std::string NormalizePath(std::string_view path);

// The search path gcc uses for C and C++ on this machine, for analysing
// /usr/include: /usr/include/c++/V, /usr/include/<triplet>/c++/V,
// /usr/include/<triplet>, /usr/include (those that exist; V the highest
// version present).
std::vector<std::string> SystemSearchDirs();

}  // namespace typecheck

#endif  // SHMHEAP_EXAMPLES_TYPECHECK_PATHS_H_
