// The typecheck demo's tokenizer; the rules are in typecheck_scan.h.

#include "examples/typecheck_scan.h"

#include <xxhash.h>

#include <algorithm>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace typecheck {
namespace {

bool IsIdentStart(unsigned char c) {
  // Bytes >= 0x80 are parts of UTF-8 identifiers (C++23 allows them, and
  // GCC has accepted them for years); `$` is a GNU extension.
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == '$' || c >= 0x80;
}
bool IsIdentChar(unsigned char c) {
  return IsIdentStart(c) || (c >= '0' && c <= '9');
}
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsHorizontalSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

const std::unordered_set<std::string_view>& Keywords() {
  static const auto* const kKeywords = new std::unordered_set<std::string_view>{
      // C++20 (which includes C89's) and C99..C23.
      "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor",
      "bool", "break", "case", "catch", "char", "char8_t", "char16_t",
      "char32_t", "class", "compl", "concept", "const", "consteval",
      "constexpr", "constinit", "const_cast", "continue", "co_await",
      "co_return", "co_yield", "decltype", "default", "delete", "do", "double",
      "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false",
      "float", "for", "friend", "goto", "if", "inline", "int", "long",
      "mutable", "namespace", "new", "noexcept", "not", "not_eq", "nullptr",
      "operator", "or", "or_eq", "private", "protected", "public", "register",
      "reinterpret_cast", "requires", "return", "short", "signed", "sizeof",
      "static", "static_assert", "static_cast", "struct", "switch", "template",
      "this", "thread_local", "throw", "true", "try", "typedef", "typeid",
      "typename", "union", "unsigned", "using", "virtual", "void", "volatile",
      "wchar_t", "while", "xor", "xor_eq", "restrict", "_Alignas", "_Alignof",
      "_Atomic", "_BitInt", "_Bool", "_Complex", "_Decimal32", "_Decimal64",
      "_Decimal128", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
      "_Thread_local", "typeof", "typeof_unqual",
      // GNU spellings, so that `__attribute__ ((...))` is not a definition.
      "__asm", "__asm__", "__attribute", "__attribute__", "__extension__",
      "__inline", "__inline__", "__restrict", "__restrict__", "__typeof",
      "__typeof__", "__volatile__", "__const", "__signed__", "__alignof__",
      "__declspec", "__int128", "__label__", "__thread", "_Pragma",
      "__builtin_va_list"};
  return *kKeywords;
}

// One significant token as the file-scope rules see it.
struct Sig {
  enum Type { kNone, kIdent, kKeyword, kString, kPunct, kOtherSig };
  Type type = kNone;
  std::string_view text;
  bool at_file_scope = false;  // an identifier seen at file scope
};

// The state of the file-scope definition rules (see the header).
class DefTracker {
 public:
  explicit DefTracker(std::vector<int64_t>* defs) : defs_(defs) {}

  void Ident(std::string_view text) {
    const bool file_scope = opaque_depth_ == 0 && paren_depth_ == 0;
    if (file_scope && statement_is_typedef_) typedef_name_ = text;
    Push({Sig::kIdent, text, file_scope});
  }

  void Keyword(std::string_view text) {
    if (text == "namespace") statement_has_namespace_ = true;
    if (text == "typedef" && opaque_depth_ == 0 && paren_depth_ == 0) {
      statement_is_typedef_ = true;
    }
    Push({Sig::kKeyword, text, false});
  }

  void String() { Push({Sig::kString, {}, false}); }
  void Other() { Push({Sig::kOtherSig, {}, false}); }

  void Punct(std::string_view p) {
    const char c = p.size() == 1 ? p[0] : '\0';
    switch (c) {
      case '(':
        if (prev_.type == Sig::kIdent && prev_.at_file_scope) Def(prev_.text);
        ++paren_depth_;
        break;
      case ')':
        if (paren_depth_ > 0) --paren_depth_;
        break;
      case '{': {
        MaybeTag();
        const bool transparent =
            statement_has_namespace_ ||
            (prev_.type == Sig::kString && prev2_.type == Sig::kKeyword &&
             prev2_.text == "extern");
        braces_.push_back(transparent);
        if (!transparent) ++opaque_depth_;
        statement_has_namespace_ = false;
        break;
      }
      case '}':
        if (!braces_.empty()) {
          if (!braces_.back()) --opaque_depth_;
          braces_.pop_back();
        }
        statement_has_namespace_ = false;
        break;
      case ';':
        MaybeTag();
        if (opaque_depth_ == 0 && paren_depth_ == 0) {
          if (statement_is_typedef_ && !typedef_name_.empty()) {
            Def(typedef_name_);
          }
          statement_is_typedef_ = false;
          typedef_name_ = {};
          statement_has_namespace_ = false;
        }
        break;
      case ':':
        MaybeTag();
        break;
      case '=':
        if (prev_.type == Sig::kIdent && prev_.at_file_scope &&
            prev2_.type == Sig::kKeyword && prev2_.text == "using") {
          Def(prev_.text);
        }
        break;
      default:
        break;
    }
    Push({Sig::kPunct, p, false});
  }

 private:
  void Push(const Sig& s) {
    prev2_ = prev_;
    prev_ = s;
  }
  void Def(std::string_view name) { defs_->push_back(StableHash(name)); }
  // `struct|class|union|enum NAME` followed by the current `{`, `;` or `:`.
  void MaybeTag() {
    if (prev_.type == Sig::kIdent && prev_.at_file_scope &&
        prev2_.type == Sig::kKeyword &&
        (prev2_.text == "struct" || prev2_.text == "class" ||
         prev2_.text == "union" || prev2_.text == "enum")) {
      Def(prev_.text);
    }
  }

  std::vector<int64_t>* defs_;
  std::vector<bool> braces_;  // true: a namespace or extern "..." brace
  int opaque_depth_ = 0;      // braces on the stack that are not transparent
  int paren_depth_ = 0;
  bool statement_has_namespace_ = false;
  bool statement_is_typedef_ = false;
  std::string_view typedef_name_;
  Sig prev_, prev2_;
};

class Scanner {
 public:
  explicit Scanner(std::string_view text)
      : s_(text), n_(text.size()), defs_(&result_.defs) {}

  ScanResult Run() {
    while (pos_ < n_) Step();
    std::sort(result_.defs.begin(), result_.defs.end());
    result_.defs.erase(std::unique(result_.defs.begin(), result_.defs.end()),
                       result_.defs.end());
    return std::move(result_);
  }

 private:
  unsigned char At(size_t i) const {
    return i < n_ ? static_cast<unsigned char>(s_[i]) : 0;
  }
  void Count(TokenKind k) { ++result_.histogram[k]; }

  void Step() {
    const unsigned char c = At(pos_);
    if (c == '\n') {
      in_directive_ = false;
      at_line_start_ = true;
      ++pos_;
      return;
    }
    if (c == '\\' && At(pos_ + 1) == '\n') {  // line splice
      pos_ += 2;
      return;
    }
    if (c == '\\' && At(pos_ + 1) == '\r' && At(pos_ + 2) == '\n') {
      pos_ += 3;
      return;
    }
    if (IsHorizontalSpace(c)) {
      ++pos_;
      return;
    }
    if (c == '/' && At(pos_ + 1) == '/') {
      LineComment();
      return;
    }
    if (c == '/' && At(pos_ + 1) == '*') {
      BlockComment();
      return;
    }
    if (c == '#' && at_line_start_ && !in_directive_) {
      at_line_start_ = false;
      Directive();
      return;
    }
    at_line_start_ = false;
    if (IsIdentStart(c)) {
      Identifier();
    } else if (IsDigit(c) || (c == '.' && IsDigit(At(pos_ + 1)))) {
      Number();
    } else if (c == '"') {
      Quoted('"', kString);
    } else if (c == '\'') {
      Quoted('\'', kChar);
    } else if (c < 0x20 || c == 0x7f || c == '@' || c == '`' || c == '\\') {
      Count(kOther);
      ++pos_;
      if (!in_directive_) defs_.Other();
    } else {
      Punctuator();
    }
  }

  void LineComment() {
    Count(kComment);
    // A backslash-newline continues a // comment (phase 2 runs first).
    while (pos_ < n_) {
      if (s_[pos_] == '\n' && (pos_ == 0 || s_[pos_ - 1] != '\\')) break;
      ++pos_;
    }
  }

  void BlockComment() {
    Count(kComment);
    const size_t end = s_.find("*/", pos_ + 2);
    pos_ = end == std::string_view::npos ? n_ : end + 2;
  }

  std::string_view ReadIdentifier() {
    const size_t start = pos_;
    while (pos_ < n_ && IsIdentChar(At(pos_))) ++pos_;
    return s_.substr(start, pos_ - start);
  }

  void SkipHorizontalSpace() {
    while (pos_ < n_ && IsHorizontalSpace(At(pos_))) ++pos_;
  }

  void Directive() {
    Count(kDirective);
    in_directive_ = true;
    ++pos_;  // '#'
    SkipHorizontalSpace();
    const std::string_view name = ReadIdentifier();
    if (name == "define") {
      SkipHorizontalSpace();
      if (pos_ < n_ && IsIdentStart(At(pos_))) {
        const std::string_view macro = ReadIdentifier();
        Count(kIdentifier);
        result_.defs.push_back(StableHash(macro));
      }
    } else if (name == "include" || name == "include_next" ||
               name == "import") {
      IncludeDirective inc;
      inc.next = name == "include_next";
      SkipHorizontalSpace();
      const unsigned char open = At(pos_);
      if (open == '"' || open == '<') {
        const char close = open == '"' ? '"' : '>';
        const size_t start = pos_ + 1;
        size_t end = start;
        while (end < n_ && s_[end] != close && s_[end] != '\n') ++end;
        inc.name = std::string(s_.substr(start, end - start));
        inc.angled = open == '<';
        Count(kString);
        pos_ = end < n_ && s_[end] == close ? end + 1 : end;
      } else {
        inc.computed = true;  // the rest of the line is scanned as tokens
      }
      result_.includes.push_back(std::move(inc));
    }
  }

  void Identifier() {
    const std::string_view id = ReadIdentifier();
    const unsigned char next = At(pos_);
    if (next == '"' &&
        (id == "R" || id == "LR" || id == "uR" || id == "UR" || id == "u8R")) {
      RawString();
      return;
    }
    if ((next == '"' || next == '\'') &&
        (id == "L" || id == "u" || id == "U" || id == "u8")) {
      Quoted(static_cast<char>(next), next == '"' ? kString : kChar);
      return;
    }
    const bool keyword = Keywords().count(id) != 0;
    Count(keyword ? kKeyword : kIdentifier);
    if (in_directive_) return;
    if (keyword) {
      defs_.Keyword(id);
    } else {
      defs_.Ident(id);
    }
  }

  void Number() {
    Count(kNumber);
    ++pos_;
    while (pos_ < n_) {
      const unsigned char c = At(pos_);
      if ((c == '+' || c == '-') &&
          (At(pos_ - 1) == 'e' || At(pos_ - 1) == 'E' || At(pos_ - 1) == 'p' ||
           At(pos_ - 1) == 'P')) {
        ++pos_;
      } else if (IsIdentChar(c) || c == '.' ||
                 (c == '\'' && IsIdentChar(At(pos_ + 1)))) {
        ++pos_;  // a digit separator is followed by a digit
      } else {
        break;
      }
    }
    if (!in_directive_) defs_.Other();
  }

  // A "..." or '...' literal from pos_ at its opening quote. An unterminated
  // literal ends at the newline, as GCC recovers.
  void Quoted(char quote, TokenKind kind) {
    Count(kind);
    ++pos_;
    while (pos_ < n_) {
      const char c = s_[pos_];
      if (c == '\\' && pos_ + 1 < n_) {
        pos_ += 2;
      } else if (c == quote) {
        ++pos_;
        break;
      } else if (c == '\n') {
        break;
      } else {
        ++pos_;
      }
    }
    if (in_directive_) return;
    if (kind == kString) {
      defs_.String();
    } else {
      defs_.Other();
    }
  }

  // R"delim(...)delim", from pos_ at the opening quote.
  void RawString() {
    Count(kString);
    const size_t open = s_.find('(', pos_ + 1);
    if (open == std::string_view::npos || open - pos_ - 1 > 16) {
      Quoted('"', kString);  // not a raw string after all; counted twice
      --result_.histogram[kString];
      return;
    }
    const std::string close =
        ")" + std::string(s_.substr(pos_ + 1, open - pos_ - 1)) + "\"";
    const size_t end = s_.find(close, open + 1);
    pos_ = end == std::string_view::npos ? n_ : end + close.size();
    if (!in_directive_) defs_.String();
  }

  void Punctuator() {
    Count(kPunctuator);
    size_t len = 1;
    if ((At(pos_) == ':' && At(pos_ + 1) == ':') ||
        (At(pos_) == '-' && At(pos_ + 1) == '>')) {
      len = 2;
    }
    const std::string_view p = s_.substr(pos_, len);
    pos_ += len;
    if (!in_directive_) defs_.Punct(p);
  }

  std::string_view s_;
  size_t n_;
  size_t pos_ = 0;
  bool at_line_start_ = true;
  bool in_directive_ = false;
  ScanResult result_;
  DefTracker defs_;
};

}  // namespace

std::string_view TokenKindName(int kind) {
  static constexpr std::string_view kNames[kNumTokenKinds] = {
      "identifiers", "keywords",   "numbers",  "strings", "chars",
      "punctuators", "directives", "comments", "other"};
  return kind >= 0 && kind < kNumTokenKinds ? kNames[kind] : "?";
}

int64_t StableHash(std::string_view bytes) {
  return static_cast<int64_t>(XXH3_64bits(bytes.data(), bytes.size()));
}

ScanResult Scan(std::string_view text) { return Scanner(text).Run(); }

}  // namespace typecheck
