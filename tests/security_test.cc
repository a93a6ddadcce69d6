// The trust model, tested: a heap is private to the uid that created it.
//
// Whoever can map a heap can read (and, with write access, change) all of
// it: there is no per-key protection. So the library's job is to make sure
// that only the creating uid can map it, that it never adopts an object
// somebody else planted under the name it was asked to create, and that a
// name can only ever mean an object directly in /dev/shm. Each test below
// checks one of those promises from the outside (modes on disk, planted
// objects and links, another uid in a forked process, hostile names).

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

std::string UniqueName(const std::string& what) {
  return testing::UniqueName("security-" + what);
}

std::string TempPath(const std::string& what) {
  return testing::TempPath("security-" + what);
}

Options Small() {
  Options o;
  o.heap_bytes = 1 << 20;
  o.table_slots_log2 = 8;
  return o;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 07777;
  return st.st_mode & 07777;
}

TEST(Security, HeapsAreCreated0600WhateverTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}}) {
    const mode_t old = umask(mask);
    const std::string name = UniqueName(absl::StrCat("mode", mask));
    absl::StatusOr<Heap> named = Heap::CreateNamed(name, Small());
    const std::string path = TempPath(absl::StrCat("mode", mask));
    unlink(path.c_str());
    absl::StatusOr<Heap> file = Heap::CreateFile(path, Small());
    umask(old);
    ASSERT_TRUE(named.ok()) << named.status();
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(ModeOf("/dev/shm/" + name), 0600u) << "umask " << mask;
    EXPECT_EQ(ModeOf(path), 0600u) << "umask " << mask;
    EXPECT_TRUE(Heap::UnlinkNamed(name).ok());
    unlink(path.c_str());
  }
}

// A name or path that already exists (planted by anyone) is refused,
// never opened, truncated or followed: a heap is built unnamed and linked
// in with linkat, which fails on any existing name as O_EXCL does.
TEST(Security, CreateNeverAdoptsAPlantedObject) {
  const std::string name = UniqueName("planted");
  const int fd =
      shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0666);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(write(fd, "not a heap", 10), 10);
  close(fd);
  EXPECT_EQ(Heap::CreateNamed(name, Small()).status().code(),
            absl::StatusCode::kAlreadyExists);
  // Attaching to it is refused too: it is not a shmheap segment.
  EXPECT_FALSE(Heap::OpenNamed(name).ok());
  struct stat st;
  ASSERT_EQ(stat(("/dev/shm/" + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 10) << "the planted object was changed";
  shm_unlink(("/" + name).c_str());

  // A symlink planted at a heap file's path is not followed.
  const std::string link = TempPath("link");
  const std::string target = TempPath("target");
  unlink(link.c_str());
  unlink(target.c_str());
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  EXPECT_EQ(Heap::CreateFile(link, Small()).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_NE(access(target.c_str(), F_OK), 0) << "the symlink was followed";
  unlink(link.c_str());
}

// A name means one object directly in /dev/shm: a symbolic link planted
// there, even one to a heap of the same user, is never followed. Opening
// through it is refused as a link, creating over it is kAlreadyExists (its
// target is not created), and unlinking the name removes the link, not
// the heap it points at.
TEST(Security, NamesNeverFollowALinkInDevShm) {
  const std::string real = UniqueName("link-target");
  absl::StatusOr<Heap> heap = Heap::CreateNamed(real, Small());
  ASSERT_TRUE(heap.ok()) << heap.status();
  const std::string link = UniqueName("link");
  const std::string link_path = "/dev/shm/" + link;
  unlink(link_path.c_str());
  ASSERT_EQ(symlink(("/dev/shm/" + real).c_str(), link_path.c_str()), 0);
  absl::Status s = Heap::OpenNamed(link).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(s.message(), absl::StrCat("heap /", link,
                                      ": is a symbolic link, not a regular "
                                      "file"));
  EXPECT_EQ(Heap::CreateNamed(link, Small()).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(Heap::UnlinkNamed(link).ok());
  EXPECT_TRUE(Heap::OpenNamed(real).ok()) << "the link's target was removed";

  // A dangling link at a name to create: its target is not created.
  const std::string nowhere = UniqueName("link-nowhere");
  ASSERT_EQ(symlink(("/dev/shm/" + nowhere).c_str(), link_path.c_str()), 0);
  EXPECT_EQ(Heap::CreateNamed(link, Small()).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_NE(access(("/dev/shm/" + nowhere).c_str(), F_OK), 0)
      << "the link was followed";
  unlink(link_path.c_str());
  EXPECT_TRUE(Heap::UnlinkNamed(real).ok());
}

// Another uid cannot map the heap at all (0600), and an object that
// belongs to another uid is refused even when it could be opened.
TEST(Security, AnotherUidIsRefused) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root to act as another uid";
  }
  const std::string name = UniqueName("uid");
  absl::StatusOr<Heap> heap = Heap::CreateNamed(name, Small());
  ASSERT_TRUE(heap.ok()) << heap.status();
  const int32_t v[] = {1, 2, 3};
  const int64_t dims[] = {3};
  ASSERT_TRUE(*heap->Add<int32_t>("secret", v, dims));

  std::vector<int> codes = testing::RunProcesses(1, [&](int) {
    if (setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0) {
      return 77;  // cannot become nobody here
    }
    absl::Status s = Heap::OpenNamed(name).status();
    return s.code() == absl::StatusCode::kPermissionDenied ? 0 : 1;
  });
  if (codes[0] == 77) {
    Heap::UnlinkNamed(name).IgnoreError();
    GTEST_SKIP() << "cannot switch to uid 65534 here";
  }
  EXPECT_EQ(codes[0], 0) << "uid 65534 attached to a 0600 heap";

  // root can open anything, so the library checks the owner itself.
  ASSERT_EQ(chown(("/dev/shm/" + name).c_str(), 65534, 65534), 0)
      << std::strerror(errno);
  absl::Status s = Heap::OpenNamed(name).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(s.message().find("uid 65534"), std::string::npos) << s;
  Heap::UnlinkNamed(name).IgnoreError();
}

// A name is one path component directly in /dev/shm, 1 to 200 bytes.
TEST(Security, NamesAreOneComponentOfBoundedLength) {
  const std::vector<std::string> bad = {"",
                                        "/",
                                        "//x",
                                        "a/b",
                                        "/a/b",
                                        "../x",
                                        "/../etc/passwd",
                                        ".",
                                        "..",
                                        "/..",
                                        std::string("a\0b", 3),
                                        std::string(201, 'n'),
                                        "/" + std::string(201, 'n')};
  for (const std::string& name : bad) {
    EXPECT_EQ(Heap::CreateNamed(name, Small()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
    EXPECT_EQ(Heap::OpenNamed(name).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
    EXPECT_EQ(Heap::UnlinkNamed(name).code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
  // The longest name is fine, and "x" and "/x" are the same heap.
  const std::string longest =
      UniqueName("") + std::string(200 - UniqueName("").size(), 'L');
  ASSERT_EQ(longest.size(), 200u);
  absl::StatusOr<Heap> heap = Heap::CreateNamed(longest, Small());
  ASSERT_TRUE(heap.ok()) << heap.status();
  EXPECT_TRUE(Heap::OpenNamed("/" + longest).ok());
  EXPECT_EQ(Heap::CreateNamed("/" + longest, Small()).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(Heap::UnlinkNamed("/" + longest).ok());
}

}  // namespace
}  // namespace shmheap
