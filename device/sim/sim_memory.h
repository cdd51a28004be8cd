// sim_memory.h: sim-gpu's memory. Device memory the host cannot touch: device addresses are
// handed out inside one large reservation mapped PROT_NONE (so a host dereference faults with
// SIGSEGV, never reads), while each allocation's bytes live in a separate private mapping that
// only the sim's kernels and copies reach, by translating a device address (interior pointers
// included) into its storage. Pinned host memory is host memory mapped twice (one memfd): the
// host's view, and the sim's own view that its copies use. While an async copy to or from a
// pinned allocation is pending, the host's view is protected (PROT_NONE), so host code (or MPI)
// touching a staging buffer before the event says the copy finished faults instead of reading
// stale bytes or corrupting the copy. Granularity is the allocation: use one pinned allocation
// per buffer in flight.
//
// Invariants:
//   - every live device allocation occupies [base, base + n_bytes) of the reservation, page
//     aligned, with at least one unused guard page after it; addresses are handed out next-fit
//     round the reservation, so a freed range is reused only after the cursor has gone all the
//     way round (a stale pointer is an error for as long as possible, not someone else's data);
//   - new device allocations are filled with the poison pattern (0x7fc1 in every 16 bits: NaN
//     as fp32, bf16 and fp64; a huge positive int32, so an uninitialised token is out of range);
//   - an allocation with pending work (uses > 0) is released only after that work finished.
// Thread-safe: the host thread allocates, resolves and releases; stream workers drop uses.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace rw::device::sim {

constexpr uint16_t kPoison16 = 0x7fc1;
void fill_poison(void* p, std::size_t n_bytes);

class SimMemory {
 public:
  struct Block {
    uintptr_t base = 0;        // device address (device blocks) or host address (pinned blocks)
    std::size_t n_bytes = 0;   // as requested
    std::size_t mapped_bytes = 0;
    char* storage = nullptr;   // the sim's view of the bytes
    bool pinned = false;       // pinned: base is the host's view of the same bytes
    int uses = 0;              // pending operations that touch the block (guarded by mutex_)
  };
  // A resolved range: the block and the offset of the pointer in it.
  struct Range {
    Block* block = nullptr;
    std::size_t offset = 0;
    char* storage() const { return block->storage + offset; }
  };

  explicit SimMemory(std::size_t address_space_bytes);
  ~SimMemory();
  SimMemory(const SimMemory&) = delete;
  SimMemory& operator=(const SimMemory&) = delete;

  void* allocate_device(std::size_t n_bytes);
  void* allocate_pinned(std::size_t n_bytes);
  // Waits for pending work on the block (counting the wait), then frees it; fatal when p is
  // not the start of a live allocation of this memory.
  void release(void* p);

  bool in_device_range(const void* p) const;
  // [p, p + n_bytes) inside one live device allocation, or one live pinned allocation: returns
  // false and says why (why_not) otherwise.
  bool resolve_device(const void* p, std::size_t n_bytes, Range* out, std::string* why_not);
  bool resolve_pinned(const void* p, std::size_t n_bytes, Range* out, std::string* why_not);

  // Pending-work accounting: add_use at submission, drop_use once the operation has run. A
  // pinned block's host view is protected while it has uses.
  void add_use(Block* b);
  void drop_use(Block* b);

  std::size_t live_device_bytes() const;
  long release_waits() const { return release_waits_.load(); }

 private:
  using BlockMap = std::map<uintptr_t, std::unique_ptr<Block>>;
  bool find(BlockMap& map, const void* p, std::size_t n_bytes, Range* out, std::string* why_not, const char* kind);
  uintptr_t place(std::size_t span_bytes);  // next-fit; 0 when the reservation is full

  char* reservation_ = nullptr;
  std::size_t reservation_bytes_ = 0;
  std::size_t page_bytes_ = 4096;
  uintptr_t cursor_ = 0;  // offset into the reservation where the next search starts
  mutable std::mutex mutex_;
  std::condition_variable uses_done_;
  BlockMap device_;  // by device address
  BlockMap pinned_;  // by host address
  std::size_t live_device_bytes_ = 0;
  std::atomic<long> release_waits_{0};
};

}  // namespace rw::device::sim
