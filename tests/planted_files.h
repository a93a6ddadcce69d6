// Files that are not regular files, planted where a heap or an image is
// expected, and what a directory holds afterwards: for the tests of
// OpenRegularFile and PendingFile (heap/segment_test), of the trust model
// (tests/security_test) and of the CLI (tools/cli_test).
//
// PlantName words each kind independently of the library (which words them
// in internal::FileTypeName), so that a test compares the library's
// messages with what they should say, not with themselves.

#ifndef SHMHEAP_TESTS_PLANTED_FILES_H_
#define SHMHEAP_TESTS_PLANTED_FILES_H_

#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace shmheap::testing {

enum class Plant { kFifo, kDirectory, kSymlink, kCharDevice };
inline constexpr Plant kEveryPlant[] = {Plant::kFifo, Plant::kDirectory,
                                        Plant::kSymlink, Plant::kCharDevice};

inline const char* PlantName(Plant p) {
  switch (p) {
    case Plant::kFifo:
      return "a FIFO";
    case Plant::kDirectory:
      return "a directory";
    case Plant::kSymlink:
      return "a symbolic link";
    case Plant::kCharDevice:
      return "a character device";
  }
  return "?";
}

// Plants `p` at `path` (a symbolic link points at `link_target`; a device
// is /dev/null's). False, with errno set, where the machine does not allow
// it: mknod needs CAP_MKNOD, which a sandbox drops.
inline bool PlantAt(Plant p, const std::string& path,
                    const std::string& link_target = "/dev/null") {
  switch (p) {
    case Plant::kFifo:
      return mkfifo(path.c_str(), 0600) == 0;
    case Plant::kDirectory:
      return mkdir(path.c_str(), 0700) == 0;
    case Plant::kSymlink:
      return symlink(link_target.c_str(), path.c_str()) == 0;
    case Plant::kCharDevice:
      return mknod(path.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0;
  }
  return false;
}

// Removes whatever is at `path` (an empty directory included).
inline void RemovePlant(const std::string& path) {
  if (unlink(path.c_str()) != 0) rmdir(path.c_str());
}

// The file type bits (S_IFMT) of what is at `path`, not following a link;
// 0 when nothing is there.
inline mode_t TypeAt(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? (st.st_mode & S_IFMT) : 0;
}

// The entries of directory `dir` whose names contain `part`, sorted.
inline std::vector<std::string> EntriesContaining(const std::string& dir,
                                                  std::string_view part) {
  std::vector<std::string> found;
  if (DIR* d = opendir(dir.c_str())) {
    while (struct dirent* e = readdir(d)) {
      if (std::string_view(e->d_name).find(part) != std::string_view::npos) {
        found.push_back(e->d_name);
      }
    }
    closedir(d);
  }
  std::sort(found.begin(), found.end());
  return found;
}

// "/a/b" -> "/a" and "b", for paths with a '/' (the tests' own).
inline std::string DirOf(const std::string& path) {
  return path.substr(0, path.rfind('/'));
}
inline std::string BaseOf(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

}  // namespace shmheap::testing

#endif  // SHMHEAP_TESTS_PLANTED_FILES_H_
