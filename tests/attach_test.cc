// An unrelated process (fork + exec of attach_helper, so no memory is
// inherited) attaches by name, at whatever address it gets, and reads arrays
// of every kind written by this process; then this process reads what the
// helper wrote back.

#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "heap/strings.h"
#include "shmheap.h"
#include "tests/kinds.h"

namespace shmheap {
namespace {

std::string g_helper;

TEST(Attach, UnrelatedProcessReadsEveryKindByName) {
  const std::string name = absl::StrCat("shmheap-attach-", getpid());
  Options o;
  o.heap_bytes = 16 << 20;
  o.table_slots_log2 = 8;
  absl::StatusOr<Heap> heap = Heap::CreateNamed(name, o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  const int64_t dims[] = {3, 5};
  for (Kind kind : testing::kAllKinds) {
    for (Layout layout : {Layout::kC, Layout::kFortran}) {
      const std::string key =
          absl::StrCat("kind:", internal::Sv(KindName(kind)), ":",
                       internal::Sv(LayoutName(layout)));
      const std::vector<std::byte> bytes = testing::TestBytes(
          kind, 15, static_cast<uint64_t>(kind) * 2 + static_cast<int>(layout));
      ASSERT_TRUE(*heap->AddRaw(key, kind, dims, layout, bytes));
    }
  }
  const pid_t pid = fork();
  if (pid == 0) {
    execl(g_helper.c_str(), g_helper.c_str(), name.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "mismatches reported by the helper";
  absl::StatusOr<ArrayView<int64_t>> ack = heap->Get<int64_t>("helper:ack");
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ((*ack)(0), 0);
  EXPECT_TRUE(Heap::UnlinkNamed(name).ok());
}

}  // namespace
}  // namespace shmheap

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc != 2) {
    fprintf(stderr, "usage: attach_test PATH_TO_attach_helper\n");
    return 2;
  }
  shmheap::g_helper = argv[1];
  return RUN_ALL_TESTS();
}
