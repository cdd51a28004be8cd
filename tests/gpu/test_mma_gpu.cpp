// test_mma_gpu.cpp: the matrix-core tile wrapper (device/cuda/mma.h) on the real GPU of the test
// binary (test_gpu_cuda: mma.sync m16n8k16; test_gpu_hip: MFMA 16x16x16), with the same checks as
// the emulation's test (mma_check.h). Tagged [conformance] so the GPU test run includes it.
#include <catch2/catch.hpp>

#include "tests/gpu/mma_check.h"
#include "tests/gpu/mma_test.h"

RW_DECLARE_MMA_TEST(RW_GPU_TEST_NS)

TEST_CASE("the matrix-core tile wrapper on the GPU matches fp64 and covers its tiles", "[conformance][mma]") {
  const rw::test::mma::Result r = rw::device::gpu::RW_GPU_TEST_NS::run_mma_test(7, false);
  rw::test::mma::check(r, RW_GPU_TEST_WARP);
}
