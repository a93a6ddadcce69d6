// No includes at all; a template and a raw string.
#ifndef STANDALONE_H
#define STANDALONE_H

template <class T>
class Box {
 public:
  T value;
};

inline const char* Pattern() { return R"re(#include "x")re"; }

#endif  // STANDALONE_H
