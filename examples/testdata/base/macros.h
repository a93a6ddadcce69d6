// A quoted include relative to this file's directory.
#ifndef BASE_MACROS_H
#define BASE_MACROS_H

#include "types.h"

#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

#endif  // BASE_MACROS_H
