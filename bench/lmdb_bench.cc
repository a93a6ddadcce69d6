// LMDB on the table workloads of bench/harness.h: an environment in
// /dev/shm (so no disk is involved, as for shmheap), one put per key in its
// own write transaction (so every add is visible to every process at once,
// as shmheap's is), and every get in a read transaction (renewed per get from
// a reset handle, LMDB's cheap path).
//
// LMDB forbids using an environment across fork, so each forked worker opens
// its own before the timed part and closes it after. The environment is
// opened with MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC: the fastest
// settings, with no durability, which shmheap does not offer either. Values
// of 1,024 floats (4 KiB) are larger than a page, so LMDB stores them on
// overflow pages (two 4 KiB pages each).

#include <lmdb.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>

#include "bench/harness.h"

namespace shmheap::bench {
namespace {

void Check(int rc, const char* what) {
  if (rc == MDB_SUCCESS) return;
  std::fprintf(stderr, "lmdb_bench: %s: %s\n", what, mdb_strerror(rc));
  std::abort();
}

class LmdbStore {
 public:
  static constexpr Mode kMode = Mode::kProcesses;

  explicit LmdbStore(const Spec& spec)
      : dir_("/dev/shm/shmheap-bench-lmdb-" + std::to_string(getpid()) + "-" +
             std::to_string(next_id_++)) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directory(dir_);
    // Address space only: with MDB_WRITEMAP the file is sparse on tmpfs.
    map_bytes_ = kNumKeys * 2 * (spec.value_bytes() + 4096) + (256 << 20);
    Open();
  }
  ~LmdbStore() {
    Close();
    std::filesystem::remove_all(dir_);
  }
  LmdbStore(const LmdbStore&) = delete;
  LmdbStore& operator=(const LmdbStore&) = delete;

  // A forked worker must not touch the parent's environment: it opens its
  // own (the parent's handle is left as it is and never used here).
  void Attach(int) {
    env_ = nullptr;
    read_txn_ = nullptr;
    Open();
  }
  void Detach() { Close(); }

  struct NoScope {};
  NoScope Scope() const { return {}; }

  void AfterMeasurement(const Spec&) {
    // Reader slots of workers that died without closing (none should).
    int dead = 0;
    mdb_reader_check(env_, &dead);
  }

  bool Add(uint64_t id, std::span<const float> value) {
    MDB_txn* txn = nullptr;
    Check(mdb_txn_begin(env_, nullptr, 0, &txn), "mdb_txn_begin");
    MDB_val k = Key(id);
    MDB_val v{value.size_bytes(), const_cast<float*>(value.data())};
    const int rc = mdb_put(txn, dbi_, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
      mdb_txn_abort(txn);
      return false;
    }
    Check(rc, "mdb_put");
    Check(mdb_txn_commit(txn), "mdb_txn_commit");
    return true;
  }

  bool Get(uint64_t id, float* first) {
    Check(mdb_txn_renew(read_txn_), "mdb_txn_renew");
    MDB_val k = Key(id);
    MDB_val v;
    const int rc = mdb_get(read_txn_, dbi_, &k, &v);
    bool found = false;
    if (rc == MDB_SUCCESS) {
      std::memcpy(first, v.mv_data, sizeof(float));
      found = true;
    } else if (rc != MDB_NOTFOUND) {
      Check(rc, "mdb_get");
    }
    mdb_txn_reset(read_txn_);
    return found;
  }

  bool Remove(uint64_t id) {
    MDB_txn* txn = nullptr;
    Check(mdb_txn_begin(env_, nullptr, 0, &txn), "mdb_txn_begin");
    MDB_val k = Key(id);
    const int rc = mdb_del(txn, dbi_, &k, nullptr);
    if (rc == MDB_NOTFOUND) {
      mdb_txn_abort(txn);
      return false;
    }
    Check(rc, "mdb_del");
    Check(mdb_txn_commit(txn), "mdb_txn_commit");
    return true;
  }

 private:
  static MDB_val Key(uint64_t id) {
    std::string_view s = Keys::Get().str(id);
    return MDB_val{s.size(), const_cast<char*>(s.data())};
  }

  void Open() {
    Check(mdb_env_create(&env_), "mdb_env_create");
    Check(mdb_env_set_mapsize(env_, map_bytes_), "mdb_env_set_mapsize");
    Check(mdb_env_open(env_, dir_.c_str(),
                       MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC, 0600),
          "mdb_env_open");
    MDB_txn* txn = nullptr;
    Check(mdb_txn_begin(env_, nullptr, 0, &txn), "mdb_txn_begin");
    Check(mdb_dbi_open(txn, nullptr, 0, &dbi_), "mdb_dbi_open");
    Check(mdb_txn_commit(txn), "mdb_txn_commit");
    Check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &read_txn_),
          "mdb_txn_begin(rdonly)");
    mdb_txn_reset(read_txn_);
  }

  void Close() {
    if (read_txn_ != nullptr) mdb_txn_abort(read_txn_);
    read_txn_ = nullptr;
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = nullptr;
  }

  static inline int next_id_ = 0;
  std::string dir_;
  uint64_t map_bytes_ = 0;
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  MDB_txn* read_txn_ = nullptr;
};

void RegisterAll() {
  constexpr OpCounts kCounts = {
      .gets = 100'000, .mix = 50'000, .add_rounds = 1};
  RegisterTable<LmdbStore>("lmdb", kCounts, [](const Spec&) { return true; });
}

}  // namespace
}  // namespace shmheap::bench

int main(int argc, char** argv) {
  return shmheap::bench::BenchmarkMain(argc, argv, shmheap::bench::RegisterAll);
}
