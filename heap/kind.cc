#include "heap/kind.h"

namespace shmheap {

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kFloat32:
      return "float32";
    case Kind::kFloat64:
      return "float64";
    case Kind::kInt8Signed:
      return "int8_signed";
    case Kind::kInt8Unsigned:
      return "int8_unsigned";
    case Kind::kInt16Signed:
      return "int16_signed";
    case Kind::kInt16Unsigned:
      return "int16_unsigned";
    case Kind::kInt32:
      return "int32";
    case Kind::kInt64:
      return "int64";
    case Kind::kInt:
      return "int";
    case Kind::kNativeint:
      return "nativeint";
    case Kind::kComplex32:
      return "complex32";
    case Kind::kComplex64:
      return "complex64";
    case Kind::kChar:
      return "char";
  }
  return "invalid";
}

std::string_view LayoutName(Layout layout) {
  switch (layout) {
    case Layout::kC:
      return "c";
    case Layout::kFortran:
      return "fortran";
  }
  return "invalid";
}

}  // namespace shmheap
