// Allocation limits for the fuzz driver: while set, an operator new larger than the per-call
// limit, or one that takes the bytes allocated since the limits were set above the total
// limit, throws AllocLimitExceeded (a std::bad_alloc) instead of allocating. A reader that sizes
// memory from an unchecked count in a tiny file then fails at once, on any machine, instead of
// succeeding on a large one or being killed by the OOM killer on a small one.
//
// Linked only into the seeded fuzz test (it replaces the global operator new and delete of its
// binary); libFuzzer builds use -malloc_limit_mb instead.
#pragma once

#include <cstddef>
#include <new>

namespace resp::fuzz {

struct AllocLimitExceeded : std::bad_alloc {
  const char* what() const noexcept override;
};

// 0: no limit. Starts the count of live bytes from zero.
void set_alloc_limit(size_t per_call, size_t total = 0);
// The request refused since the last call (0 if none), then reset.
size_t take_refused_alloc();

}  // namespace resp::fuzz
