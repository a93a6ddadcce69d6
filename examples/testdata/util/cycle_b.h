#ifndef UTIL_CYCLE_B_H
#define UTIL_CYCLE_B_H

#include "cycle_a.h"
#include "../base/types.h"

int cycle_b(int depth);

#endif  // UTIL_CYCLE_B_H
