// An angle include (resolved against the root) and a quoted one.
#ifndef BASE_LIST_H
#define BASE_LIST_H

#include <base/types.h>
#include "macros.h"

struct list;

int list_push(struct list* l, int value);
size_type list_size(const struct list* l);

#endif  // BASE_LIST_H
