// simt_emu.cpp: see simt_emu.h. Fibers are Boost.Context fibers on stacks from a per-OS-thread
// pool (64 KiB each by default, RINGWORLD_SIMT_STACK_KB, with a PROT_NONE guard page below so
// an overflow faults instead of corrupting a neighbour). The scheduler is a loop of passes: in
// each pass every runnable fiber, in a freshly permuted order, runs until it blocks or ends.
#include "device/cuda/emu/simt_emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/context/fiber.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "device/cuda/emu/mma_emu.h"
#include "src/common/fatal.h"

namespace rw::simt::emu {
namespace {

namespace ctx = boost::context;

constexpr int kMaxThreadsPerBlock = 1024;
constexpr int kMaxWarpSize = 64;
constexpr uint16_t kPoison16 = 0x7fc1;  // NaN as fp32/bf16/fp64, as sim-gpu's fresh memory

enum class State : uint8_t { runnable, at_block_barrier, at_warp, done };
enum WarpOpKind : int { kSyncWarp = 1000, kBallot = 1001, kMma = 1002 };
constexpr int kGatherBytes = 48;  // per lane: the largest fragment set (8 + 4 bf16, 4 fp32)

struct Warp {
  int n_lanes = 0;
  int arrived = 0;
  int kind[2] = {0, 0};
  int width[2] = {0, 0};
  uint64_t slots[2][kMaxWarpSize] = {};
  unsigned char gathered[2][kMaxWarpSize][kGatherBytes] = {};  // warp_arrive's extra bytes
  bool product_ready[2] = {false, false};                      // mma_bf16: D computed once per operation
  float product[2][16][16] = {};
};

struct Thread {
  ThreadInfo info;
  int warp = 0;
  int lane = 0;
  State state = State::runnable;
  uint64_t warp_ops = 0;
  ctx::fiber fiber;   // the thread, seen from the scheduler
  ctx::fiber caller;  // the scheduler, seen from the thread
};

struct Block {
  BlockInfo info;
  int n_threads = 0;
  int warp_size = 32;
  int arrived = 0;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  unsigned char* smem = nullptr;
  const std::function<void()>* body = nullptr;
};

// ---- process-wide settings and counters ----

uint64_t seed_from_environment() {
  const char* text = std::getenv("RINGWORLD_SIMT_SEED");
  if (!text || !*text) return 1;
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  RW_CHECK(errno == 0 && *end == '\0', std::string("RINGWORLD_SIMT_SEED='") + text + "': expected an integer");
  return v;
}

std::size_t stack_bytes_from_environment() {
  const char* text = std::getenv("RINGWORLD_SIMT_STACK_KB");
  if (!text || !*text) return std::size_t(64) << 10;
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  RW_CHECK(errno == 0 && *end == '\0' && v >= 16 && v <= 65536,
           std::string("RINGWORLD_SIMT_STACK_KB='") + text + "': expected an integer in [16, 65536]");
  return static_cast<std::size_t>(v) << 10;
}

std::atomic<uint64_t> g_seed{seed_from_environment()};
std::atomic<int> g_dropped_barrier{0};
std::atomic<uint64_t> g_launches{0}, g_blocks{0}, g_switches{0};

// ---- fiber stacks: a pool per OS thread, reused across blocks and launches ----

struct StackPool {
  std::size_t stack_bytes = stack_bytes_from_environment();
  std::size_t page_bytes = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::vector<ctx::stack_context> free;
  std::vector<std::pair<void*, std::size_t>> mappings;
  ~StackPool() {
    for (auto& m : mappings) munmap(m.first, m.second);
  }
};
thread_local StackPool tl_stacks;

struct PooledStack {
  ctx::stack_context allocate() {
    StackPool& pool = tl_stacks;
    if (!pool.free.empty()) {
      ctx::stack_context sc = pool.free.back();
      pool.free.pop_back();
      return sc;
    }
    const std::size_t total = pool.stack_bytes + pool.page_bytes;
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    RW_CHECK(p != MAP_FAILED, "SIMT emulation: cannot map a fiber stack of " + std::to_string(total) + " bytes");
    RW_CHECK(mprotect(p, pool.page_bytes, PROT_NONE) == 0, "SIMT emulation: cannot protect a stack guard page");
    pool.mappings.emplace_back(p, total);
    ctx::stack_context sc;
    sc.size = pool.stack_bytes;
    sc.sp = static_cast<char*>(p) + total;
    return sc;
  }
  void deallocate(ctx::stack_context& sc) noexcept { tl_stacks.free.push_back(sc); }
};

// ---- the running block and thread of this OS thread ----

thread_local Block* tl_block = nullptr;
thread_local Thread* tl_thread = nullptr;

struct SharedBuffer {
  unsigned char* data = nullptr;
  std::size_t capacity = 0;
  ~SharedBuffer() { std::free(data); }
  unsigned char* get(std::size_t n_bytes) {
    if (n_bytes > capacity) {
      std::free(data);
      capacity = std::max<std::size_t>(n_bytes, 1024);
      data = static_cast<unsigned char*>(std::aligned_alloc(64, (capacity + 63) / 64 * 64));
      RW_CHECK(data != nullptr, "SIMT emulation: out of memory for shared memory");
    }
    return data;
  }
};
thread_local SharedBuffer tl_shared;

Thread& this_thread() {
  RW_CHECK(tl_thread != nullptr, "SIMT emulation: a device function was called outside a launched kernel");
  return *tl_thread;
}

void yield_to_scheduler() {
  Thread& t = *tl_thread;
  t.caller = std::move(t.caller).resume();
}

std::string block_name(const Block& b) {
  return "(" + std::to_string(b.info.block_idx.x) + ", " + std::to_string(b.info.block_idx.y) + ", " +
         std::to_string(b.info.block_idx.z) + ")";
}

[[noreturn]] void report_deadlock(const Block& b) {
  int at_barrier = 0, at_warp = 0, done = 0;
  for (const Thread& t : b.threads) {
    at_barrier += t.state == State::at_block_barrier;
    at_warp += t.state == State::at_warp;
    done += t.state == State::done;
  }
  RW_FAIL("SIMT emulation: deadlock in block " + block_name(b) + " of " + std::to_string(b.n_threads) + " threads: " +
          std::to_string(at_barrier) + " wait at __syncthreads, " + std::to_string(at_warp) + " at warp operations, " +
          std::to_string(done) + " have exited (a barrier in divergent code, or threads returning before a barrier)");
}

void run_block(Block& b, std::mt19937_64& rng) {
  const int n = b.n_threads;
  for (int i = 0; i < n; ++i) {
    Thread& t = b.threads[i];
    t.state = State::runnable;
    t.warp_ops = 0;
    t.fiber = ctx::fiber(std::allocator_arg, PooledStack{}, [&t, &b](ctx::fiber&& caller) {
      t.caller = std::move(caller);
      (*b.body)();
      t.state = State::done;
      return std::move(t.caller);
    });
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  int live = n;
  uint64_t switches = 0;
  while (live > 0) {
    std::shuffle(order.begin(), order.end(), rng);
    bool progressed = false;
    for (int i : order) {
      Thread& t = b.threads[i];
      if (t.state != State::runnable) continue;
      tl_thread = &t;
      t.fiber = std::move(t.fiber).resume();
      tl_thread = nullptr;
      ++switches;
      progressed = true;
      if (t.state == State::done) --live;
    }
    if (!progressed) report_deadlock(b);
  }
  g_switches += switches;
}

// Arrival at warp operation `kind`: records the value (and extra_bytes of extra, for a gather),
// blocks until every lane arrived, returns the slot set (parity) the operation used.
int warp_arrive(uint64_t value, int kind, int width, const void* extra = nullptr, int extra_bytes = 0) {
  Thread& t = this_thread();
  Block& b = *tl_block;
  Warp& w = b.warps[t.warp];
  if (w.n_lanes != b.warp_size)
    RW_FAIL("SIMT emulation: warp operation in a partial warp (block of " + std::to_string(b.n_threads) +
            " threads, warp size " + std::to_string(b.warp_size) + "): use blocks of whole warps");
  const int parity = static_cast<int>(t.warp_ops++ & 1);
  if (w.arrived == 0) {
    w.kind[parity] = kind;
    w.width[parity] = width;
    w.product_ready[parity] = false;
  } else if (w.kind[parity] != kind || w.width[parity] != width) {
    RW_FAIL("SIMT emulation: lanes of warp " + std::to_string(t.warp) + " in block " + block_name(b) +
            " met at different warp operations (kind " + std::to_string(w.kind[parity]) + " width " +
            std::to_string(w.width[parity]) + " vs kind " + std::to_string(kind) + " width " + std::to_string(width) +
            "): divergent warp-synchronous code");
  }
  w.slots[parity][t.lane] = value;
  if (extra_bytes > 0) std::memcpy(w.gathered[parity][t.lane], extra, static_cast<std::size_t>(extra_bytes));
  t.state = State::at_warp;
  if (++w.arrived == w.n_lanes) {
    w.arrived = 0;
    const int first = t.warp * b.warp_size;
    for (int i = first; i < first + w.n_lanes; ++i)
      if (b.threads[i].state == State::at_warp) b.threads[i].state = State::runnable;
  }
  yield_to_scheduler();
  return parity;
}

}  // namespace

const ThreadInfo& current_thread() { return this_thread().info; }

const BlockInfo& current_block() {
  RW_CHECK(tl_block != nullptr, "SIMT emulation: blockIdx/blockDim/gridDim read outside a launched kernel");
  return tl_block->info;
}

void sync_block(int tag) {
  if (tag != 0 && tag == g_dropped_barrier.load(std::memory_order_relaxed)) return;
  Thread& t = this_thread();
  Block& b = *tl_block;
  t.state = State::at_block_barrier;
  if (++b.arrived == b.n_threads) {
    b.arrived = 0;
    for (Thread& u : b.threads)
      if (u.state == State::at_block_barrier) u.state = State::runnable;
  }
  yield_to_scheduler();
}

void sync_warp() { warp_arrive(0, kSyncWarp, 0); }

uint64_t warp_exchange(uint64_t value, int src_lane, int kind, int width) {
  const int parity = warp_arrive(value, kind, width);
  const Block& b = *tl_block;
  RW_CHECK(src_lane >= 0 && src_lane < b.warp_size,
           "SIMT emulation: shuffle from lane " + std::to_string(src_lane) + " outside the warp");
  return b.warps[tl_thread->warp].slots[parity][src_lane];
}

uint64_t warp_ballot(bool predicate) {
  const int parity = warp_arrive(predicate ? 1 : 0, kBallot, 0);
  const Block& b = *tl_block;
  const Warp& w = b.warps[tl_thread->warp];
  uint64_t mask = 0;
  for (int i = 0; i < w.n_lanes; ++i)
    if (w.slots[parity][i]) mask |= uint64_t(1) << i;
  return mask;
}

// The tile product from the documented fragment layouts (mma_emu.h). Each table below says, for
// an element of a tile, which lane holds it and at which position of that lane's fragment.
void mma_bf16(float* d, const uint16_t* a, const uint16_t* b, int warp_size) {
  Thread& t = this_thread();
  Block& blk = *tl_block;
  RW_CHECK(warp_size == blk.warp_size, "SIMT emulation: mma for warp size " + std::to_string(warp_size) +
                                           " in a launch of warp size " + std::to_string(blk.warp_size));
  const int n_a = warp_size == 32 ? 8 : 4, n_b = 4, n_c = 4, n_cols = warp_size == 32 ? 8 : 16;
  struct Fragments {
    uint16_t a[8];
    uint16_t b[4];
    float c[4];
  };
  static_assert(sizeof(Fragments) <= kGatherBytes, "gather size");
  Fragments mine{};
  std::memcpy(mine.a, a, sizeof(uint16_t) * n_a);
  std::memcpy(mine.b, b, sizeof(uint16_t) * n_b);
  std::memcpy(mine.c, d, sizeof(float) * n_c);
  const int parity = warp_arrive(0, kMma, warp_size, &mine, sizeof mine);
  Warp& w = blk.warps[t.warp];
  auto lane_fragments = [&](int lane) {
    Fragments f;
    std::memcpy(&f, w.gathered[parity][lane], sizeof f);
    return f;
  };
  auto bf16_value = [](uint16_t bits) {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float x;
    std::memcpy(&x, &u, 4);
    return x;
  };
  float(&D)[16][16] = w.product[parity];
  if (!w.product_ready[parity]) {  // the first lane to run after the barrier computes the tile
    float A[16][16], B[16][16], C[16][16];
    if (warp_size == 32) {
      // PTX ISA, mma.m16n8k16, .bf16 A (16 x 16, row): groupID = laneid >> 2, threadID_in_group =
      // laneid % 4; element a_i: row = groupID for i < 2 or 4 <= i < 6, else groupID + 8; col =
      // threadID_in_group * 2 + (i & 1), plus 8 for i >= 4. B (16 x 8, col): b_i: row =
      // threadID_in_group * 2 + (i & 1), plus 8 for i >= 2; col = groupID. C/D (16 x 8, f32): c_i:
      // row = groupID for i < 2, else groupID + 8; col = threadID_in_group * 2 + (i & 1).
      for (int lane = 0; lane < 32; ++lane) {
        const Fragments f = lane_fragments(lane);
        const int group = lane >> 2, in_group = lane % 4;
        for (int i = 0; i < 8; ++i) {
          const int row = (i < 2 || (i >= 4 && i < 6)) ? group : group + 8;
          const int col = in_group * 2 + (i & 1) + (i >= 4 ? 8 : 0);
          A[row][col] = bf16_value(f.a[i]);
        }
        for (int i = 0; i < 4; ++i) B[in_group * 2 + (i & 1) + (i >= 2 ? 8 : 0)][group] = bf16_value(f.b[i]);
        for (int i = 0; i < 4; ++i) C[i < 2 ? group : group + 8][in_group * 2 + (i & 1)] = f.c[i];
      }
    } else {
      // AMD matrix instruction calculator, v_mfma_f32_16x16x16bf16_1k: A[i][k] is element k % 4 of
      // lane i + 16 (k / 4); B[k][j] is element k % 4 of lane j + 16 (k / 4); D[i][j] (and C) is
      // element i % 4 of lane j + 16 (i / 4).
      for (int i = 0; i < 16; ++i)
        for (int k = 0; k < 16; ++k) A[i][k] = bf16_value(lane_fragments(i + 16 * (k / 4)).a[k % 4]);
      for (int k = 0; k < 16; ++k)
        for (int j = 0; j < 16; ++j) B[k][j] = bf16_value(lane_fragments(j + 16 * (k / 4)).b[k % 4]);
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) C[i][j] = lane_fragments(j + 16 * (i / 4)).c[i % 4];
    }
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < n_cols; ++j) {
        float sum = C[i][j];
        for (int k = 0; k < 16; ++k) sum += A[i][k] * B[k][j];
        D[i][j] = sum;
      }
    w.product_ready[parity] = true;
  }
  const int lane = t.lane;
  if (warp_size == 32) {
    const int group = lane >> 2, in_group = lane % 4;
    for (int i = 0; i < 4; ++i) d[i] = D[i < 2 ? group : group + 8][in_group * 2 + (i & 1)];
  } else {
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j)
        if (j + 16 * (i / 4) == lane) d[i % 4] = D[i][j];
  }
}

int lane_id() { return this_thread().lane; }

int warp_size() {
  RW_CHECK(tl_block != nullptr, "SIMT emulation: warp size asked outside a launched kernel");
  return tl_block->warp_size;
}

void* dynamic_shared_memory() {
  RW_CHECK(tl_block != nullptr, "SIMT emulation: shared memory asked outside a launched kernel");
  return tl_block->smem;
}

void launch(dim3 grid, dim3 block, std::size_t smem_bytes, int warp_size, const std::function<void()>& body) {
  RW_CHECK(tl_block == nullptr, "SIMT emulation: a kernel launched from inside a kernel");
  RW_CHECK(warp_size == 32 || warp_size == 64, "SIMT emulation: warp size " + std::to_string(warp_size));
  const long n_threads = long(block.x) * block.y * block.z;
  RW_CHECK(n_threads >= 1 && n_threads <= kMaxThreadsPerBlock,
           "SIMT emulation: a block of " + std::to_string(n_threads) + " threads (1..1024)");
  const uint64_t n_blocks = uint64_t(grid.x) * grid.y * grid.z;
  const uint64_t launch_index = g_launches++;
  if (n_blocks == 0) return;

  Block b;
  b.n_threads = static_cast<int>(n_threads);
  b.warp_size = warp_size;
  b.body = &body;
  b.info.block_dim = block;
  b.info.grid_dim = grid;
  b.threads.resize(n_threads);
  const int n_warps = static_cast<int>((n_threads + warp_size - 1) / warp_size);
  b.warps.resize(n_warps);
  for (int w = 0; w < n_warps; ++w)
    b.warps[w].n_lanes = std::min<int>(warp_size, static_cast<int>(n_threads) - w * warp_size);
  for (int i = 0; i < b.n_threads; ++i) {
    Thread& t = b.threads[i];
    t.info.thread_idx = uint3{static_cast<unsigned>(i % block.x), static_cast<unsigned>((i / block.x) % block.y),
                              static_cast<unsigned>(i / (block.x * block.y))};
    t.warp = i / warp_size;
    t.lane = i % warp_size;
  }
  unsigned char* smem = tl_shared.get(smem_bytes);
  b.smem = smem;

  std::mt19937_64 rng(g_seed.load() * 0x9e3779b97f4a7c15ull + launch_index);
  std::vector<uint64_t> order(n_blocks);
  std::iota(order.begin(), order.end(), uint64_t(0));
  std::shuffle(order.begin(), order.end(), rng);
  tl_block = &b;
  for (uint64_t linear : order) {
    b.info.block_idx = uint3{static_cast<unsigned>(linear % grid.x), static_cast<unsigned>((linear / grid.x) % grid.y),
                             static_cast<unsigned>(linear / (uint64_t(grid.x) * grid.y))};
    for (std::size_t i = 0; i + 1 < smem_bytes; i += 2) std::memcpy(smem + i, &kPoison16, 2);
    b.arrived = 0;
    for (Warp& w : b.warps) w.arrived = 0;
    run_block(b, rng);
  }
  tl_block = nullptr;
  g_blocks += n_blocks;
}

void set_schedule_seed(uint64_t seed) { g_seed = seed; }
uint64_t schedule_seed() { return g_seed.load(); }
void drop_barrier_for_test(int tag) { g_dropped_barrier = tag; }

Counters counters() {
  Counters c;
  c.launches = g_launches.load();
  c.blocks = g_blocks.load();
  c.switches = g_switches.load();
  return c;
}

}  // namespace rw::simt::emu
