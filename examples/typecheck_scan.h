// The per-file front end of the typecheck demo: a single-pass C/C++ tokenizer
// that reports, for one file's bytes, a histogram of token kinds, the
// identifiers the file defines and its #include directives.
//
// It is a model of a type checker's parser, not a preprocessor: conditionals
// are not evaluated (both branches of an #if are scanned), macros are not
// expanded, and nothing is read but the one buffer. What it does is fixed and
// deterministic, which is all the demo needs: the same bytes always give the
// same ScanResult, in any process.
//
// Tokens (TokenKind): identifiers, keywords (C23, C++20 and the GNU spellings
// such as __attribute__), pp-numbers, string literals (with encoding prefixes
// and raw strings), character literals, punctuators (`::` and `->` are one
// token, every other punctuation character is a token of its own),
// directives (a `#` that starts a line: one token for `#name`), comments,
// and other bytes. A backslash-newline splices lines, as in translation
// phase 2.
//
// Definitions (ScanResult::defs), deliberately simple:
//   * `#define NAME` defines NAME;
//   * at file scope (outside any braces other than those of `namespace ... {`
//     and `extern "..." {`, and outside parentheses):
//       - an identifier directly followed by `(` (function declarations and
//         definitions, and top-level macro invocations);
//       - `struct|class|union|enum NAME` followed by `{`, `;` or `:`;
//       - `using NAME =`;
//       - the last file-scope identifier of a statement that starts with
//         `typedef` (so `typedef struct {...} name_t;` defines name_t).
// Directive lines take no part in the file-scope rules. Braces are counted
// without evaluating #if, so unbalanced conditional braces can shift the
// scope for the rest of the file; that is accepted.
//
// Thread safety: Scan is a pure function.

#ifndef SHMHEAP_EXAMPLES_TYPECHECK_SCAN_H_
#define SHMHEAP_EXAMPLES_TYPECHECK_SCAN_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace typecheck {

enum TokenKind : int {
  kIdentifier,
  kKeyword,
  kNumber,
  kString,
  kChar,
  kPunctuator,
  kDirective,
  kComment,
  kOther,
  kNumTokenKinds
};

// Plural names for reports: "identifiers", "keywords", ...
std::string_view TokenKindName(int kind);

struct IncludeDirective {
  std::string name;       // between the quotes or angle brackets
  bool angled = false;    // <name>
  bool next = false;      // #include_next
  bool computed = false;  // #include MACRO: name is empty, never resolved
};

struct ScanResult {
  std::array<int32_t, kNumTokenKinds> histogram{};
  // Hashes (IdentifierHash) of the defined identifiers, sorted, unique.
  std::vector<int64_t> defs;
  // In the order they appear, duplicates included.
  std::vector<IncludeDirective> includes;
};

// The 64-bit hash used for identifiers and file paths in published arrays:
// XXH3-64 with seed 0, so results do not depend on any heap's seed.
int64_t StableHash(std::string_view bytes);

ScanResult Scan(std::string_view text);

}  // namespace typecheck

#endif  // SHMHEAP_EXAMPLES_TYPECHECK_SCAN_H_
