// sim_memory.cpp: see sim_memory.h.
#include "device/sim/sim_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "src/common/fatal.h"

namespace rw::device::sim {
namespace {

std::string hex(uintptr_t p) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%" PRIxPTR, p);
  return text;
}

char* map_storage(std::size_t n_bytes) {
  void* p = mmap(nullptr, n_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
}

}  // namespace

void fill_poison(void* p, std::size_t n_bytes) {
  unsigned char* bytes = static_cast<unsigned char*>(p);
  const unsigned char lo = kPoison16 & 0xff, hi = kPoison16 >> 8;  // little-endian 16-bit pattern
  for (std::size_t i = 0; i + 1 < n_bytes; i += 2) bytes[i] = lo, bytes[i + 1] = hi;
  if (n_bytes % 2) bytes[n_bytes - 1] = lo;
}

SimMemory::SimMemory(std::size_t address_space_bytes) {
  page_bytes_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  reservation_bytes_ = (address_space_bytes / page_bytes_) * page_bytes_;
  void* p = mmap(nullptr, reservation_bytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  RW_CHECK(p != MAP_FAILED, "sim-gpu: cannot reserve " + std::to_string(reservation_bytes_ >> 30) +
                                " GiB of address space for device memory (" + std::strerror(errno) +
                                "); set RINGWORLD_SIM_GPU_ADDRESS_SPACE_GB lower");
  reservation_ = static_cast<char*>(p);
}

SimMemory::~SimMemory() {
  for (auto* map : {&device_, &pinned_})
    for (auto& [base, block] : *map) {
      munmap(block->storage, block->mapped_bytes);
      if (block->pinned) munmap(reinterpret_cast<void*>(block->base), block->mapped_bytes);
    }
  munmap(reservation_, reservation_bytes_);
}

uintptr_t SimMemory::place(std::size_t span) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(reservation_), end = begin + reservation_bytes_;
  auto try_range = [&](uintptr_t from, uintptr_t limit) -> uintptr_t {
    uintptr_t candidate = from;
    auto it = device_.lower_bound(candidate);
    if (it != device_.begin()) {
      const Block& prev = *std::prev(it)->second;
      candidate = std::max(candidate, prev.base + prev.mapped_bytes + page_bytes_);
    }
    for (;;) {
      if (candidate + span > limit) return 0;
      if (it == device_.end() || candidate + span + page_bytes_ <= it->first) return candidate;
      candidate = std::max(candidate, it->second->base + it->second->mapped_bytes + page_bytes_);
      ++it;
    }
  };
  uintptr_t at = try_range(begin + cursor_, end);
  if (!at) at = try_range(begin, end);
  if (at) cursor_ = at + span + page_bytes_ - begin;
  return at;
}

void* SimMemory::allocate_device(std::size_t n_bytes) {
  const std::size_t mapped = std::max<std::size_t>(1, (n_bytes + page_bytes_ - 1) / page_bytes_) * page_bytes_;
  auto block = std::make_unique<Block>();
  block->n_bytes = n_bytes;
  block->mapped_bytes = mapped;
  block->storage = map_storage(mapped);
  if (!block->storage) return nullptr;
  fill_poison(block->storage, mapped);
  std::lock_guard<std::mutex> lock(mutex_);
  block->base = place(mapped);
  if (!block->base) {
    munmap(block->storage, mapped);
    return nullptr;
  }
  live_device_bytes_ += n_bytes;
  void* address = reinterpret_cast<void*>(block->base);
  device_.emplace(block->base, std::move(block));
  return address;
}

void* SimMemory::allocate_pinned(std::size_t n_bytes) {
  const std::size_t mapped = std::max<std::size_t>(1, (n_bytes + page_bytes_ - 1) / page_bytes_) * page_bytes_;
  const int fd = memfd_create("ringworld-sim-gpu-pinned", MFD_CLOEXEC);
  if (fd < 0) return nullptr;
  void* host_view = MAP_FAILED;
  void* sim_view = MAP_FAILED;
  if (ftruncate(fd, static_cast<off_t>(mapped)) == 0) {
    host_view = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    sim_view = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  close(fd);
  if (host_view == MAP_FAILED || sim_view == MAP_FAILED) {
    if (host_view != MAP_FAILED) munmap(host_view, mapped);
    if (sim_view != MAP_FAILED) munmap(sim_view, mapped);
    return nullptr;
  }
  auto block = std::make_unique<Block>();
  block->n_bytes = n_bytes;
  block->mapped_bytes = mapped;
  block->storage = static_cast<char*>(sim_view);
  block->base = reinterpret_cast<uintptr_t>(host_view);
  block->pinned = true;
  std::lock_guard<std::mutex> lock(mutex_);
  pinned_.emplace(block->base, std::move(block));
  return host_view;
}

void SimMemory::release(void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  std::unique_lock<std::mutex> lock(mutex_);
  BlockMap* map = in_device_range(p) ? &device_ : &pinned_;
  auto it = map->find(address);
  RW_CHECK(it != map->end(), "sim-gpu: release(" + hex(address) + "): not the start of a live " +
                                 (map == &device_ ? "device" : "pinned host") +
                                 " allocation of this backend (released twice, an interior pointer, or "
                                 "never allocated here)");
  Block* block = it->second.get();
  if (block->uses > 0) {
    ++release_waits_;
    uses_done_.wait(lock, [&] { return block->uses == 0; });
  }
  munmap(block->storage, block->mapped_bytes);
  if (block->pinned) munmap(reinterpret_cast<void*>(block->base), block->mapped_bytes);
  if (map == &device_) live_device_bytes_ -= block->n_bytes;
  map->erase(it);
}

bool SimMemory::in_device_range(const void* p) const {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), begin = reinterpret_cast<uintptr_t>(reservation_);
  return a >= begin && a < begin + reservation_bytes_;
}

bool SimMemory::find(BlockMap& map, const void* p, std::size_t n_bytes, Range* out, std::string* why_not,
                     const char* kind) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = map.upper_bound(a);
  if (it == map.begin()) {
    *why_not = hex(a) + " is not inside a live " + kind + " allocation (released, or never allocated)";
    return false;
  }
  Block* b = std::prev(it)->second.get();
  const std::size_t offset = a - b->base;
  if (offset >= b->mapped_bytes) {
    *why_not = hex(a) + " is not inside a live " + kind + " allocation (released, or never allocated)";
    return false;
  }
  if (offset + n_bytes > b->n_bytes) {
    *why_not = hex(a) + " + " + std::to_string(n_bytes) + " bytes runs " +
               std::to_string(offset + n_bytes - b->n_bytes) + " bytes past the end of its " + kind + " allocation (" +
               hex(b->base) + ", " + std::to_string(b->n_bytes) + " bytes)";
    return false;
  }
  out->block = b;
  out->offset = offset;
  return true;
}

bool SimMemory::resolve_device(const void* p, std::size_t n_bytes, Range* out, std::string* why_not) {
  if (!in_device_range(p)) {
    *why_not = hex(reinterpret_cast<uintptr_t>(p)) + " is not sim-gpu device memory (a host pointer?)";
    return false;
  }
  return find(device_, p, n_bytes, out, why_not, "device");
}

bool SimMemory::resolve_pinned(const void* p, std::size_t n_bytes, Range* out, std::string* why_not) {
  if (!find(pinned_, p, n_bytes, out, why_not, "pinned host")) {
    if (why_not->find("past the end") != std::string::npos) return false;
    *why_not = hex(reinterpret_cast<uintptr_t>(p)) +
               " is host memory that is not pinned (allocate it with MemoryKind::pinned_host): sim-gpu, like a "
               "GPU, copies asynchronously only to and from pinned host memory";
    return false;
  }
  return true;
}

void SimMemory::add_use(Block* b) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (b->uses++ == 0 && b->pinned)
    RW_CHECK(mprotect(reinterpret_cast<void*>(b->base), b->mapped_bytes, PROT_NONE) == 0,
             std::string("sim-gpu: mprotect of a pinned buffer failed: ") + std::strerror(errno));
}

void SimMemory::drop_use(Block* b) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (--b->uses > 0) return;
  if (b->pinned)
    RW_CHECK(mprotect(reinterpret_cast<void*>(b->base), b->mapped_bytes, PROT_READ | PROT_WRITE) == 0,
             std::string("sim-gpu: mprotect of a pinned buffer failed: ") + std::strerror(errno));
  uses_done_.notify_all();
}

std::size_t SimMemory::live_device_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_device_bytes_;
}

}  // namespace rw::device::sim
