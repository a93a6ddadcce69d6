// Nested directories: ".." in a quoted include, and an angle include.
#ifndef APP_NESTED_DEEP_LEAF_H
#define APP_NESTED_DEEP_LEAF_H

#include "../../local.h"
#include <util/cycle_b.h>

/* A directive inside a comment is not a directive:
#include <base/list.h>
*/

#define LEAF_LEVEL 3

#endif  // APP_NESTED_DEEP_LEAF_H
