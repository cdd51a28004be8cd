// host_buffer.h: 64-byte aligned host arrays (one cache line, one AVX-512 vector) with
// value semantics. Used for host-side tensors; device memory goes through device::Backend.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace rw {

template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n) {
    std::size_t n_bytes = ((n * sizeof(T) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, n_bytes == 0 ? 64 : n_bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { std::free(p); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const AlignedAllocator<U>&) const { return false; }
};

template <class T>
using HostVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace rw
