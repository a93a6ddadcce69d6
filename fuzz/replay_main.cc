// The driver that fuzz targets link in builds without libFuzzer (gcc, and
// the asan and tsan configs): runs LLVMFuzzerTestOneInput over every file
// named on the command line (directories are walked in sorted order), then
// over deterministic mutations of each, so that `bazel test //...` replays
// every target's checked-in corpus as a regression test and a little beyond.
// Under --config=fuzz the same target sources link libFuzzer's driver
// instead (fuzz/fuzzer.bzl).
//
// Usage: <target>_replay [--mutations=N] PATH...
// A failing input aborts, as under libFuzzer (the mutated bytes are written
// to $TEST_UNDECLARED_OUTPUTS_DIR, or ./, as crash-replay-<n> first, so the
// failure can be replayed). Exit status 1 when no input file was found,
// which means a broken corpus path rather than a passing test.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// xorshift64*: a fixed sequence, so every run tries the same mutations.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed | 1) {}
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1DULL;
  }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }

 private:
  uint64_t state_;
};

// The kinds of edit libFuzzer's mutators make most often: random bytes,
// "interesting" integers written over a field, truncation.
std::string Mutate(const std::string& input, Rng& rng) {
  std::string s = input;
  if (s.empty()) s.push_back('\0');
  const int edits = 1 + static_cast<int>(rng.Below(4));
  for (int e = 0; e < edits; ++e) {
    switch (rng.Below(4)) {
      case 0:
        s[rng.Below(s.size())] = static_cast<char>(rng.Next());
        break;
      case 1:
        s[rng.Below(s.size())] ^= static_cast<char>(1 << rng.Below(8));
        break;
      case 2: {
        static constexpr uint64_t kInteresting[] = {0,
                                                    1,
                                                    2,
                                                    7,
                                                    8,
                                                    16,
                                                    4095,
                                                    4096,
                                                    4097,
                                                    0x7fffffff,
                                                    0xffffffff,
                                                    uint64_t{1} << 32,
                                                    uint64_t{1} << 46,
                                                    ~uint64_t{0}};
        const uint64_t v = kInteresting[rng.Below(std::size(kInteresting))];
        const size_t width = size_t{1} << rng.Below(4);  // 1, 2, 4 or 8
        const size_t at = rng.Below(s.size());
        std::memcpy(s.data() + at, &v, std::min(width, s.size() - at));
        break;
      }
      default:
        s.resize(rng.Below(s.size() + 1));
        if (s.empty()) s.push_back('\0');
        break;
    }
  }
  return s;
}

void Run(const std::string& bytes, int number) {
  // Saved first: an abort in the target leaves no other trace of the bytes.
  const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  const std::string path = std::string(dir != nullptr ? dir : ".") +
                           "/crash-replay-" + std::to_string(number);
  {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
  }
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                         bytes.size());
  std::filesystem::remove(path);
}

}  // namespace

int main(int argc, char** argv) {
  int mutations = 0;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--mutations=", 0) == 0) {
      mutations = std::atoi(arg.c_str() + std::strlen("--mutations="));
      continue;
    }
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry :
           std::filesystem::recursive_directory_iterator(arg)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else {
      files.push_back(arg);
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "replay: no input files\n");
    return 1;
  }
  int runs = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    std::ifstream in(files[f], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "replay: cannot read %s\n", files[f].c_str());
      return 1;
    }
    const std::string input{std::istreambuf_iterator<char>(in),
                            std::istreambuf_iterator<char>()};
    Run(input, runs++);
    Rng rng(0x9e3779b97f4a7c15ULL * (f + 1));
    for (int m = 0; m < mutations; ++m) Run(Mutate(input, rng), runs++);
  }
  std::printf("replay: %zu files, %d inputs run\n", files.size(), runs);
  return 0;
}
