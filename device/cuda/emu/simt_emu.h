// simt_emu.h: a small SIMT emulation that runs the GPU kernels of device/cuda/ on the CPU, for
// tests. Not a simulator of any GPU's timing: a strict executor of the CUDA programming model.
//
//   - launch() runs the grid's blocks one after another, in a permuted order, on the calling
//     thread; each block's threads are fibers (Boost.Context), each with its own stack;
//   - a fiber runs until it reaches a synchronisation point (__syncthreads, a warp shuffle, vote
//     or __syncwarp), then the scheduler resumes the next runnable fiber; the order in which
//     the runnable fibers run is a fresh seeded permutation at every pass, so code that relies
//     on an order the hardware does not promise (a missing barrier, a warp-synchronous
//     assumption) reads data that is not there yet and gives a wrong answer;
//   - __syncthreads() waits for every thread of the block, a warp operation for every lane of
//     the warp (warp size 32 or 64, given by the launch); a barrier that can never complete
//     (threads exited or waiting elsewhere) is fatal and says who waits where;
//   - dynamic shared memory is a per-block buffer filled with NaN (0x7fc1 in every 16 bits) at
//     every block start, so a read of shared memory nobody wrote shows up as NaN;
//   - warp lanes that disagree on the operation they meet at (a shuffle against a vote, or
//     different widths) are fatal.
//
// Test hooks: set_schedule_seed() chooses the permutations (default: RINGWORLD_SIMT_SEED or 1);
// drop_barrier_for_test(tag) makes the named barrier RW_SYNCTHREADS(tag) of the kernels a
// no-op (simt.h), so a test can show that removing it gives a wrong answer.
//
// Threading: a launch runs wholly on the calling thread; several threads may launch at once
// (each has its own scheduler state). Only the emulated kernels include this header
// (through vendor.h); the rest of the program sees it through emu_backend.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

namespace rw::simt::emu {

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// What a kernel body reads through blockIdx / blockDim / gridDim.
struct BlockInfo {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};

// What a kernel body reads through threadIdx.
struct ThreadInfo {
  uint3 thread_idx;
};

// The running fiber's thread and block (valid only inside a launched kernel).
const ThreadInfo& current_thread();
const BlockInfo& current_block();

// __syncthreads(). tag != 0 names a barrier that a test may drop (drop_barrier_for_test).
void sync_block(int tag);
// __syncwarp(): every lane of the calling thread's warp.
void sync_warp();
// Warp exchange: every lane of the warp deposits `value` and, once all have, receives the value
// of lane `src_lane` (0 <= src_lane < warp size). `kind` and `width` identify the operation;
// lanes meeting with different ones are fatal.
uint64_t warp_exchange(uint64_t value, int src_lane, int kind, int width);
// Warp vote: bit i of the result is lane i's predicate (lanes of the warp that exist).
uint64_t warp_ballot(bool predicate);
// The lane of the calling thread in its warp, and the warp size of the launch.
int lane_id();
int warp_size();
// The block's dynamic shared memory (the launch's smem_bytes, NaN-filled at block start).
void* dynamic_shared_memory();

// Runs body() as every thread of every block of the grid (see the file comment). Fatal on a
// block larger than 1024 threads, a zero warp size, or a deadlock.
void launch(dim3 grid, dim3 block, std::size_t smem_bytes, int warp_size, const std::function<void()>& body);

// Test hooks (process-wide).
void set_schedule_seed(uint64_t seed);
uint64_t schedule_seed();
void drop_barrier_for_test(int tag);  // 0: none dropped
// Launches so far (a test can check a kernel path was taken) and fiber switches.
struct Counters {
  uint64_t launches = 0;
  uint64_t blocks = 0;
  uint64_t switches = 0;
};
Counters counters();

}  // namespace rw::simt::emu
