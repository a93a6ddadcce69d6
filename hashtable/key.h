// Key and HashedKey: how every keyed call of the public API names its key.
//
// A key is a byte string, hashed with XXH3 and the heap's seed, or a
// HashedKey for callers that already hold a 64-bit hash (Hack and Flow pass
// MD5 prefixes). Key converts implicitly from both, so each operation has
// one signature instead of one per key form.
//
// Key holds a view of the bytes, not a copy: the bytes must stay alive for
// the call (a temporary std::string passed directly is fine).

#ifndef SHMHEAP_HASHTABLE_KEY_H_
#define SHMHEAP_HASHTABLE_KEY_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace shmheap {

// A key given by its 64-bit hash. `key`, when not empty, is stored (with
// Options::keep_keys) and compared on lookup; an empty `key` trusts the hash
// alone.
struct HashedKey {
  uint64_t hash = 0;
  std::string_view key = {};
};

class Key {
 public:
  Key() noexcept = default;                              // the empty key
  Key(std::string_view key) noexcept : bytes_(key) {}    // NOLINT: implicit
  Key(const char* key) noexcept : bytes_(key) {}         // NOLINT: implicit
  Key(const std::string& key) noexcept : bytes_(key) {}  // NOLINT: implicit
  Key(HashedKey key) noexcept                            // NOLINT: implicit
      : bytes_(key.key), hash_(key.hash), hashed_(true) {}

  std::string_view bytes() const noexcept { return bytes_; }
  // Whether the caller gave the hash (then hash() is it).
  bool hashed() const noexcept { return hashed_; }
  uint64_t hash() const noexcept { return hash_; }

 private:
  std::string_view bytes_;
  uint64_t hash_ = 0;
  bool hashed_ = false;
};

}  // namespace shmheap

#endif  // SHMHEAP_HASHTABLE_KEY_H_
