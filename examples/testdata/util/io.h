// C++: a namespace is transparent to definitions, a class body is not.
#ifndef UTIL_IO_H
#define UTIL_IO_H

#include "strings.h"
#include "cycle_a.h"
#include "strings.h"  // a repeated include is published once

namespace util {

int write_all(int fd, const char* data, size_type size);

class Reader {
 public:
  int read(char* buffer, size_type size);
};

}  // namespace util

extern "C" {
int io_flush(int fd);
}

#endif  // UTIL_IO_H
