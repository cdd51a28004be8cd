// mma_test.h: a check of the matrix-core tile wrapper (device/cuda/mma.h): one warp multiplies a
// 16 x 64 bf16 A by a 64 x N bf16 B onto an fp32 C through four chained tile operations, loading
// and storing every fragment through the wrapper's accessors; it also reports where each lane's
// fragment elements sit (the accessors' map). Run by the emulation at warp size 32 and 64
// (test_simt_emu.cpp) and on a real GPU (test_mma_gpu.cpp). The kernel: mma_test_kernels.cuh.
#pragma once
#include <cstdint>
#include <vector>

namespace rw::test::mma {

struct Result {
  int warp_size = 0, n = 0;              // N: the tile's columns (8 on NVIDIA, 16 on AMD)
  std::vector<float> a, b, c, d;         // A 16 x 64, B 64 x N (the stored bf16 values), C, D 16 x N
  std::vector<int> map_a, map_b, map_c;  // [lane * elements + i] = row * cols + col of that element
};

}  // namespace rw::test::mma

#define RW_DECLARE_MMA_TEST(ns)                                           \
  namespace rw::device::gpu::ns {                                         \
  rw::test::mma::Result run_mma_test(uint64_t seed, bool wrong_a_layout); \
  }
