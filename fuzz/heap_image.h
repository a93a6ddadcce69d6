// The input format of //fuzz:open_verify_fuzzer: how fuzz bytes become a
// heap file, and how make_corpus turns a real heap file into fuzz bytes.
//
// A real heap file is mostly zeros: the header page holds 384 meaningful
// bytes, the registry and table pages a few hundred, the heap whatever the
// blobs occupy. Mutating a raw image would spend most mutations on zeros that
// no code reads, and the seeds would weigh tens of KiB each. So the fuzzer
// reads a sparse form by default and a raw file only when asked:
//
//   byte 0        mode: bit 0 set = sparse, clear = raw
//   raw:          the remaining bytes are the file, verbatim
//   sparse:       sizeof(Header) bytes   the header (the rest of page 0 is 0)
//                 u32 LE                 file bytes past heap_start
//                 u16 LE n, n bytes      written at header.registry_offset
//                 u16 LE n, n bytes      written at the live table (the
//                                        area Header::table names)
//                 the rest               written at header.heap_start
//
// Sections land where the header (as fuzzed) says, so the fuzzer moves them
// by mutating the header's offsets; every file offset is clamped to
// kMaxImageBytes, so no input asks for a large file. Short input reads as
// zeros.
//
// In both modes three header words are stored XOR their expected value:
// magic, format word and owner uid. A stored 0 therefore means "this build's
// magic and format, the running user", so seeds stay deep after a format
// bump and under any uid, while every value stays reachable (XOR is a
// bijection).

#ifndef SHMHEAP_FUZZ_HEAP_IMAGE_H_
#define SHMHEAP_FUZZ_HEAP_IMAGE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace shmheap::fuzz {

// Files never exceed this: enough for every geometry the small seeds use
// (table_slots_log2 up to 14 and a few hundred sessions), small enough that
// a write per execution costs microseconds.
inline constexpr uint64_t kMaxImageBytes = uint64_t{1} << 20;

inline constexpr uint8_t kModeRaw = 0;
inline constexpr uint8_t kModeSparse = 1;

// The heap file that the fuzz input `data` describes.
std::string DecodeImage(std::span<const uint8_t> data);

// The sparse input that decodes to `file`, a real heap file no larger than
// kMaxImageBytes (trailing zeros of each section are dropped).
std::string EncodeSparse(const std::string& file);

// The raw-mode input that decodes to `file`.
std::string EncodeRaw(const std::string& file);

}  // namespace shmheap::fuzz

#endif  // SHMHEAP_FUZZ_HEAP_IMAGE_H_
