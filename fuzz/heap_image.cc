#include "fuzz/heap_image.h"

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "heap/layout.h"

namespace shmheap::fuzz {
namespace {

using internal::Header;

// Reads little-endian fields off the front of the input; past its end every
// read yields zeros, so a short input is still a (mostly zero) file.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}

  std::string Bytes(size_t n) {
    const size_t take = std::min(n, data_.size());
    std::string out(reinterpret_cast<const char*>(data_.data()), take);
    data_ = data_.subspan(take);
    return out;
  }
  uint64_t Uint(size_t bytes) {
    const std::string b = Bytes(bytes);
    uint64_t v = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      v |= uint64_t{static_cast<uint8_t>(b[i])} << (8 * i);
    }
    return v;
  }
  std::string Rest() { return Bytes(data_.size()); }

 private:
  std::span<const uint8_t> data_;
};

uint64_t LoadWord(const std::string& s, size_t offset) {
  uint64_t w = 0;
  if (offset + 8 <= s.size()) std::memcpy(&w, s.data() + offset, 8);
  return w;
}

// Applies (and, XOR being an involution, undoes) the XOR of magic, format
// word and owner uid with the values this build and user expect.
void ToggleExpectedFields(std::string& file) {
  auto toggle = [&file](size_t offset, uint64_t value, size_t width) {
    if (offset + width > file.size()) return;
    uint64_t w = 0;
    std::memcpy(&w, file.data() + offset, width);
    w ^= value;
    std::memcpy(file.data() + offset, &w, width);
  };
  toggle(offsetof(Header, magic), internal::kMagic, 8);
  toggle(offsetof(Header, format), internal::FormatWord(), 8);
  toggle(offsetof(Header, owner_uid), geteuid(), 4);
}

// Copies as much of `bytes` to file[offset, ...) as fits in the file.
void WriteAt(std::string& file, uint64_t offset, const std::string& bytes) {
  if (offset >= file.size()) return;
  const uint64_t n = std::min<uint64_t>(bytes.size(), file.size() - offset);
  std::memcpy(file.data() + offset, bytes.data(), n);
}

// file[offset, offset + length) without its trailing zeros, clipped to the
// file and to `max_length`.
// Where the header bytes at the start of `s` (unverified) put the live
// table: its area's offset, the area number taken modulo 2 and the area size
// from at most 2^32 slots, so that any header gives an offset (Attach
// refuses the ones that disagree with the geometry).
uint64_t LiveTableOffset(const std::string& s) {
  const uint64_t areas = LoadWord(s, offsetof(Header, table_areas_offset));
  const uint64_t word = LoadWord(s, offsetof(Header, table));
  const uint32_t max_log2 =
      std::min<uint32_t>(static_cast<uint32_t>(LoadWord(
                             s, offsetof(Header, max_table_slots_log2))),
                         32);
  return areas +
         (internal::TableArea(word) & 1) * internal::TableAreaBytes(max_log2);
}

std::string Section(const std::string& file, uint64_t offset, uint64_t length,
                    uint64_t max_length) {
  if (offset >= file.size()) return {};
  std::string s =
      file.substr(offset, std::min({length, max_length, file.size() - offset}));
  s.erase(s.find_last_not_of('\0') + 1);
  return s;
}

void AppendUint(std::string& out, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>(v >> 8 * i));
}

}  // namespace

std::string DecodeImage(std::span<const uint8_t> data) {
  if (data.empty()) return {};
  std::string file;
  if ((data[0] & 1) == kModeRaw) {
    file.assign(reinterpret_cast<const char*>(data.data() + 1),
                std::min<size_t>(data.size() - 1, kMaxImageBytes));
  } else {
    Reader r(data.subspan(1));
    std::string header = r.Bytes(sizeof(Header));
    header.resize(sizeof(Header), '\0');
    const uint64_t past_heap_start = r.Uint(4);
    const std::string registry = r.Bytes(r.Uint(2));
    const std::string table = r.Bytes(r.Uint(2));
    const std::string heap = r.Rest();
    auto clamp = [](uint64_t v) { return std::min(v, kMaxImageBytes); };
    const uint64_t heap_start =
        clamp(LoadWord(header, offsetof(Header, heap_start)));
    file.assign(clamp(heap_start + past_heap_start), '\0');
    WriteAt(file, 0, header);
    WriteAt(file, clamp(LoadWord(header, offsetof(Header, registry_offset))),
            registry);
    WriteAt(file, clamp(LiveTableOffset(header)), table);
    WriteAt(file, heap_start, heap);
  }
  ToggleExpectedFields(file);
  return file;
}

std::string EncodeSparse(const std::string& real_file) {
  std::string file = real_file;
  ToggleExpectedFields(file);
  Header h;
  std::memset(static_cast<void*>(&h), 0, sizeof h);
  std::memcpy(static_cast<void*>(&h), file.data(),
              std::min(file.size(), sizeof h));
  constexpr uint64_t kMaxSection = 0xffff;  // a u16 length
  const std::string registry = Section(
      file, h.registry_offset,
      uint64_t{h.max_sessions} * sizeof(internal::SessionEntry), kMaxSection);
  const std::string table = Section(
      file, LiveTableOffset(file),
      (uint64_t{1} << std::min(
           internal::TableSlotsLog2(h.table.load(std::memory_order_relaxed)),
           32u)) *
          sizeof(internal::Slot),
      kMaxSection);
  const std::string heap =
      Section(file, h.heap_start, kMaxImageBytes, kMaxImageBytes);
  std::string out(1, static_cast<char>(kModeSparse));
  out.append(file, 0, std::min(file.size(), sizeof(Header)));
  out.resize(1 + sizeof(Header), '\0');
  AppendUint(out, file.size() > h.heap_start ? file.size() - h.heap_start : 0,
             4);
  AppendUint(out, registry.size(), 2);
  out += registry;
  AppendUint(out, table.size(), 2);
  out += table;
  out += heap;
  return out;
}

std::string EncodeRaw(const std::string& real_file) {
  std::string file = real_file;
  ToggleExpectedFields(file);
  return std::string(1, static_cast<char>(kModeRaw)) + file;
}

}  // namespace shmheap::fuzz
