// Pin: keeps the collector from moving data while a view is alive.
//
// A Pin is a process-local, reference-counted token. While any Pin of a
// process is alive, that process's session is "in scope", and a collection
// (gc/) waits for it to leave before it moves a single byte. Copying a Pin
// when the process already holds one touches no shared memory.
//
// Thread safety: Pin objects may be created, copied and destroyed
// concurrently from any thread of the process. A Pin must not outlive the
// Heap it came from, and does not survive fork (the child's Heap starts a
// session of its own).

#ifndef SHMHEAP_HEAP_PIN_H_
#define SHMHEAP_HEAP_PIN_H_

#include <utility>

namespace shmheap {
namespace internal {

// What a Pin holds on to: the process-local side of a session.
class PinTarget {
 public:
  // Takes one more reference. REQUIRES: the target is already pinned.
  virtual void AddPin() noexcept = 0;
  // Drops one reference; the last one leaves the session's scope.
  virtual void DropPin() noexcept = 0;

 protected:
  ~PinTarget() = default;
};

}  // namespace internal

class Pin {
 public:
  // An empty pin: pins nothing (views over plain memory use it).
  Pin() noexcept = default;
  // Adopts one reference that the caller already took on `target`.
  static Pin Adopt(internal::PinTarget* target) noexcept {
    Pin p;
    p.target_ = target;
    return p;
  }
  Pin(const Pin& other) noexcept : target_(other.target_) {
    if (target_ != nullptr) target_->AddPin();
  }
  Pin(Pin&& other) noexcept : target_(std::exchange(other.target_, nullptr)) {}
  Pin& operator=(Pin other) noexcept {
    std::swap(target_, other.target_);
    return *this;
  }
  ~Pin() {
    if (target_ != nullptr) target_->DropPin();
  }

  bool empty() const { return target_ == nullptr; }
  // Releases the reference now; the Pin becomes empty.
  void Reset() noexcept { Pin().swap(*this); }
  void swap(Pin& other) noexcept { std::swap(target_, other.target_); }

 private:
  internal::PinTarget* target_ = nullptr;
};

}  // namespace shmheap

#endif  // SHMHEAP_HEAP_PIN_H_
