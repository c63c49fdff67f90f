#include "alloc_limit.h"

#include <malloc.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace resp::fuzz {

namespace {
std::atomic<size_t> g_limit{0}, g_total{0};
std::atomic<int64_t> g_live{0};  // bytes allocated minus freed since the limits were set
std::atomic<size_t> g_refused{0};

void* allocate(size_t n, size_t align) {
  if (const size_t limit = g_limit.load(std::memory_order_relaxed); limit != 0) {
    const size_t total = g_total.load(std::memory_order_relaxed);
    const int64_t live = g_live.load(std::memory_order_relaxed);
    if (n > limit || (total != 0 && live > 0 && static_cast<size_t>(live) + n > total)) {
      g_refused.store(n, std::memory_order_relaxed);
      throw AllocLimitExceeded();
    }
  }
  if (n == 0) n = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(n);
  } else if (::posix_memalign(&p, align, n) != 0) {
    p = nullptr;
  }
  if (!p) throw std::bad_alloc();
  g_live.fetch_add(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}

void release(void* p) {
  if (!p) return;
  g_live.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}
}  // namespace

const char* AllocLimitExceeded::what() const noexcept {
  return "allocation above the fuzz limit (a size taken from the input without a bound?)";
}

void set_alloc_limit(size_t per_call, size_t total) {
  g_live.store(0);
  g_total.store(total);
  g_limit.store(per_call);
}

size_t take_refused_alloc() {
  return g_refused.exchange(0);
}

}  // namespace resp::fuzz

// Every form of the global operator new / delete, so that memory from malloc always goes back
// through free (sanitizers check that allocation and release functions match) and the live
// bytes are counted on both sides.
void* operator new(size_t n) {
  return resp::fuzz::allocate(n, 0);
}
void* operator new[](size_t n) {
  return resp::fuzz::allocate(n, 0);
}
void* operator new(size_t n, std::align_val_t a) {
  return resp::fuzz::allocate(n, static_cast<size_t>(a));
}
void* operator new[](size_t n, std::align_val_t a) {
  return resp::fuzz::allocate(n, static_cast<size_t>(a));
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try {
    return resp::fuzz::allocate(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  try {
    return resp::fuzz::allocate(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return resp::fuzz::allocate(n, static_cast<size_t>(a));
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return resp::fuzz::allocate(n, static_cast<size_t>(a));
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept {
  resp::fuzz::release(p);
}
void operator delete[](void* p) noexcept {
  resp::fuzz::release(p);
}
void operator delete(void* p, size_t) noexcept {
  resp::fuzz::release(p);
}
void operator delete[](void* p, size_t) noexcept {
  resp::fuzz::release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  resp::fuzz::release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  resp::fuzz::release(p);
}
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  resp::fuzz::release(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  resp::fuzz::release(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  resp::fuzz::release(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  resp::fuzz::release(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  resp::fuzz::release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  resp::fuzz::release(p);
}
