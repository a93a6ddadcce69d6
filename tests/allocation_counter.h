// Counts every operator new of the test binary that links
// //tests:allocation_counter, so a test can assert that a code path
// allocates nothing (or nothing proportional to its input).

#ifndef SHMHEAP_TESTS_ALLOCATION_COUNTER_H_
#define SHMHEAP_TESTS_ALLOCATION_COUNTER_H_

#include <cstdint>

namespace shmheap::testing {

// operator new calls so far, from every thread (relaxed: a tally).
uint64_t Allocations();

}  // namespace shmheap::testing

#endif  // SHMHEAP_TESTS_ALLOCATION_COUNTER_H_
