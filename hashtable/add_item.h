// AddItem: one value of a batched add (Heap::AddMany, Store::AddMany).
//
// The arguments of Heap::AddRaw gathered in a struct, so that a batch of
// adds is one span. Like Key, an AddItem holds views, not copies: the key
// bytes, dims and data must stay alive for the call.

#ifndef SHMHEAP_HASHTABLE_ADD_ITEM_H_
#define SHMHEAP_HASHTABLE_ADD_ITEM_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "hashtable/key.h"
#include "heap/kind.h"

namespace shmheap {

struct AddItem {
  Key key;
  Kind kind = Kind::kFloat32;
  // The shape: `data` holds the product of `dims` elements in `layout`'s
  // storage order.
  std::span<const int64_t> dims;
  Layout layout = Layout::kC;
  std::span<const std::byte> data;

  // An item of typed elements.
  template <Element T>
  static AddItem Of(Key key, std::span<const T> data,
                    std::span<const int64_t> dims, Layout layout = Layout::kC) {
    return AddItem{key, KindTraits<T>::kKind, dims, layout,
                   std::as_bytes(data)};
  }
};

}  // namespace shmheap

#endif  // SHMHEAP_HASHTABLE_ADD_ITEM_H_
