// Two includes that resolve to nothing: a missing header and a computed one.
#ifndef UTIL_STRINGS_H
#define UTIL_STRINGS_H

#include <base/list.h>
#include <missing/nowhere.h>
#define STRINGS_IMPL "strings_impl.h"
#include STRINGS_IMPL

size_type str_len(const char* s);
char* str_dup(const char* s);

#endif  // UTIL_STRINGS_H
