// The typecheck demo's files and paths (typecheck_paths.h).

#include "examples/typecheck_paths.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "heap/strings.h"

namespace typecheck {
namespace {

namespace fs = std::filesystem;
using shmheap::internal::Sv;

std::string Dirname(std::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string Join(std::string_view dir, std::string_view name) {
  if (!name.empty() && name[0] == '/') return NormalizePath(name);
  return NormalizePath(absl::StrCat(Sv(dir), "/", Sv(name)));
}

// Appends the regular files below `root` to `files`, counting the
// directories below it that cannot be listed in `index`.
absl::Status ListTree(const std::string& root, std::vector<std::string>* files,
                      FileIndex* index) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(
        absl::StrCat(root, ": not a directory",
                     ec ? absl::StrCat(" (", ec.message(), ")") : ""));
  }
  std::vector<std::string> pending = {NormalizePath(root)};
  bool is_root = true;
  while (!pending.empty()) {
    const std::string dir = std::move(pending.back());
    pending.pop_back();
    fs::directory_iterator it(dir, ec);
    if (!ec) {
      for (; it != fs::directory_iterator(); it.increment(ec)) {
        std::error_code entry_ec;
        // A link to a directory is not followed (its status without
        // following links is not a directory); a link to a file counts.
        if (fs::is_directory(it->symlink_status(entry_ec))) {
          pending.push_back(NormalizePath(it->path().native()));
        } else if (it->is_regular_file(entry_ec)) {
          files->push_back(NormalizePath(it->path().native()));
        }
        if (ec) break;
      }
    }
    if (ec) {
      if (is_root) {
        return absl::PermissionDeniedError(
            absl::StrCat("cannot list ", root, ": ", ec.message()));
      }
      if (index->unlisted_dirs++ == 0) {
        index->first_unlisted = absl::StrCat(dir, ": ", ec.message());
      }
      ec.clear();
    }
    is_root = false;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FileIndex> BuildIndex(
    const std::vector<std::string>& roots,
    const std::vector<std::string>& search_dirs) {
  FileIndex index;
  std::vector<std::string> files;
  for (const std::string& root : roots) {
    if (absl::Status s = ListTree(root, &files, &index); !s.ok()) return s;
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no files to analyse under the given roots",
        index.unlisted_dirs == 0
            ? ""
            : absl::StrCat(" (", index.unlisted_dirs,
                           " directories could not be listed; the first: ",
                           index.first_unlisted, ")")));
  }
  index.paths = std::move(files);
  for (const std::string& d : search_dirs.empty() ? roots : search_dirs) {
    index.search_dirs.push_back(NormalizePath(d));
  }
  index.hashes.reserve(index.paths.size());
  index.by_path.reserve(index.paths.size());
  index.by_hash.reserve(index.paths.size());
  for (size_t i = 0; i < index.paths.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    const int64_t h = StableHash(index.paths[i]);
    index.hashes.push_back(h);
    index.by_path.emplace(index.paths[i], id);
    if (!index.by_hash.emplace(h, id).second) {
      // Closures name files by hash, so two paths must not share one.
      return absl::FailedPreconditionError(
          absl::StrCat(index.paths[i], " and ", index.paths[index.by_hash[h]],
                       " have the same hash"));
    }
  }
  return index;
}

// The index of the file `inc` names when `includer` contains it, or -1.
int32_t ResolveInclude(const FileIndex& index, int32_t includer,
                       const IncludeDirective& inc) {
  if (inc.computed || inc.name.empty()) return -1;
  const std::string& from = index.paths[includer];
  if (!inc.name.empty() && inc.name[0] == '/') return index.Find(inc.name);
  if (!inc.angled && !inc.next) {
    const int32_t found = index.Find(Join(Dirname(from), inc.name));
    if (found >= 0) return found;
  }
  size_t first = 0;
  if (inc.next) {
    for (size_t d = 0; d < index.search_dirs.size(); ++d) {
      const std::string& dir = index.search_dirs[d];
      if (from.size() > dir.size() && from.compare(0, dir.size(), dir) == 0 &&
          (from[dir.size()] == '/' || dir == "/")) {
        first = d + 1;
        break;
      }
    }
  }
  for (size_t d = first; d < index.search_dirs.size(); ++d) {
    const int32_t found = index.Find(Join(index.search_dirs[d], inc.name));
    if (found >= 0 && !(inc.next && found == includer)) return found;
  }
  return -1;
}

absl::Status ReadFile(const std::string& path, std::string* out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot stat ", path, ": ", std::strerror(e)));
  }
  out->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out->size()) {
    const ssize_t n = read(fd, out->data() + done, out->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      close(fd);
      return absl::UnavailableError(
          absl::StrCat("cannot read ", path, ": ", std::strerror(e)));
    }
    if (n == 0) break;  // the file shrank: analyse what is there
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  close(fd);
  return absl::OkStatus();
}

std::string NormalizePath(std::string_view path) {
  const bool absolute = !path.empty() && path[0] == '/';
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    const std::string_view part = path.substr(i, j - i);
    if (part.empty() || part == ".") {
      // nothing
    } else if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!absolute) {
        parts.push_back(part);  // "/.." is "/"
      }
    } else {
      parts.push_back(part);
    }
    i = j + 1;
  }
  if (parts.empty()) return std::string(absolute ? "/" : ".");
  std::string out;
  for (size_t p = 0; p < parts.size(); ++p) {
    if (p > 0 || absolute) out += '/';
    out.append(parts[p].data(), parts[p].size());
  }
  return out;
}

std::vector<std::string> SystemSearchDirs() {
  std::vector<std::string> dirs;
  std::error_code ec;
  auto highest_version = [&](const std::string& dir) -> std::string {
    std::string best;
    int best_major = -1;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string v = it->path().filename().native();
      const int major = std::atoi(v.c_str());
      if (major > best_major && it->is_directory(ec)) {
        best_major = major;
        best = v;
      }
    }
    return best;
  };
  std::string triplet;
  for (fs::directory_iterator it("/usr/include", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().native();
    if (name.find("-linux-gnu") != std::string::npos && it->is_directory(ec)) {
      triplet = name;
      break;
    }
  }
  const std::string cxx = highest_version("/usr/include/c++");
  if (!cxx.empty()) {
    dirs.push_back("/usr/include/c++/" + cxx);
    if (!triplet.empty() &&
        fs::is_directory("/usr/include/" + triplet + "/c++/" + cxx, ec)) {
      dirs.push_back("/usr/include/" + triplet + "/c++/" + cxx);
    }
  }
  if (!triplet.empty()) dirs.push_back("/usr/include/" + triplet);
  dirs.push_back("/usr/include");
  return dirs;
}

}  // namespace typecheck
