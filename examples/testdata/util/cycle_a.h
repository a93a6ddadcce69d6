// cycle_a.h and cycle_b.h include each other; the guards stop a compiler,
// the closure search stops on its own.
#ifndef UTIL_CYCLE_A_H
#define UTIL_CYCLE_A_H

#include "cycle_b.h"

int cycle_a(int depth);

#endif  // UTIL_CYCLE_A_H
