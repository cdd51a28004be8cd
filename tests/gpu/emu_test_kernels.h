// emu_test_kernels.h: small kernels that probe the SIMT emulation itself (tests/gpu/
// emu_test_kernels.cpp, compiled once per emulated warp size into emu_w32 and emu_w64), for
// test_simt_emu.cpp. Each runs its kernel under the emulation on host memory and returns what the
// threads wrote.
#pragma once
#include <cstdint>
#include <vector>

namespace rw::test::simt {

struct WarpOps {
  int warp_size = 0;
  std::vector<int> lane, xor3, down5_w8, up2_w16, index7, index_w4;
  std::vector<uint64_t> ballot_mod3;
  std::vector<int> any_is_40, all_below_n;
  std::vector<float> warp_sum, block_sum;
};

}  // namespace rw::test::simt

#define RW_DECLARE_EMU_TEST_KERNELS(ns)                                                       \
  namespace rw::device::gpu::ns {                                                             \
  /* Every warp operation of simt.h on a block of n_threads (a multiple of the warp size). */ \
  rw::test::simt::WarpOps run_warp_ops(int n_threads);                                        \
  /* The order in which the n_threads of one block passed one point (before any barrier). */  \
  std::vector<int> run_order(int n_threads);                                                  \
  /* out[t] = in[n - 1 - t] through shared memory, with or without the barrier between. */    \
  std::vector<float> run_reverse(const std::vector<float>& in, bool with_barrier);            \
  /* __syncthreads() reached by only half the block: a deadlock, fatal. */                    \
  void run_divergent_barrier();                                                               \
  /* A shuffle reached by only some lanes of a warp: a deadlock, fatal. */                    \
  void run_divergent_shuffle();                                                               \
  /* Half a warp at a shuffle, the other half at a vote: fatal. */                            \
  void run_mismatched_warp_ops();                                                             \
  }

RW_DECLARE_EMU_TEST_KERNELS(emu_w32)
RW_DECLARE_EMU_TEST_KERNELS(emu_w64)
