// mma_test_kernels.cuh: the kernel and host side of mma_test.h, for whichever toolchain compiles
// it (vendor.h): the emulation (host memory) or a GPU (device memory, the runtime's copies).
// Included by exactly one translation unit per compilation (it defines run_mma_test).
#pragma once
#include <cstdint>
#include <vector>

#include "device/cuda/mma.h"
#include "tests/gpu/mma_test.h"

namespace rw::device::gpu::RW_GPU_NS {
namespace mma_test_detail {

constexpr int kKTotal = 64;  // four tile steps of K = 16

// wrong_a_layout: read A with row and column swapped (a plausible fragment bug, for the test
// that the emulation catches one).
__global__ void mma_chain_kernel(const bf16_t* a, const bf16_t* b, const float* c, float* d, int* map_a, int* map_b,
                                 int* map_c, int wrong_a_layout) {
  using T = MmaTile;
  const int lane = lane_id();
  T::C acc;
  for (int i = 0; i < T::kC; ++i) {
    acc.x[i] = c[T::c_row(lane, i) * T::N + T::c_col(lane, i)];
    map_c[lane * T::kC + i] = T::c_row(lane, i) * T::N + T::c_col(lane, i);
  }
  for (int i = 0; i < T::kA; ++i) map_a[lane * T::kA + i] = T::a_row(lane, i) * T::K + T::a_col(lane, i);
  for (int i = 0; i < T::kB; ++i) map_b[lane * T::kB + i] = T::b_row(lane, i) * T::N + T::b_col(lane, i);
  for (int step = 0; step < kKTotal / T::K; ++step) {
    T::A fa;
    T::B fb;
    for (int i = 0; i < T::kA; ++i) {
      const int row = wrong_a_layout ? T::a_col(lane, i) : T::a_row(lane, i);
      const int col = wrong_a_layout ? T::a_row(lane, i) : T::a_col(lane, i);
      fa.x[i] = a[row * kKTotal + step * T::K + col];
    }
    for (int i = 0; i < T::kB; ++i) fb.x[i] = b[(step * T::K + T::b_row(lane, i)) * T::N + T::b_col(lane, i)];
    T::mma(acc, fa, fb);
  }
  for (int i = 0; i < T::kC; ++i) d[T::c_row(lane, i) * T::N + T::c_col(lane, i)] = acc.x[i];
}

inline float random_value(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>((z >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

}  // namespace mma_test_detail

rw::test::mma::Result run_mma_test(uint64_t seed, bool wrong_a_layout) {
  using namespace mma_test_detail;
  using T = MmaTile;
  rw::test::mma::Result r;
  r.warp_size = warp_size();
  r.n = T::N;
  std::vector<bf16_t> a(16 * kKTotal), b(static_cast<std::size_t>(kKTotal) * T::N);
  std::vector<float> c(16 * T::N);
  for (auto& x : a) x = from_float<bf16_t>(random_value(seed));
  for (auto& x : b) x = from_float<bf16_t>(random_value(seed));
  for (auto& x : c) x = random_value(seed);
  for (const bf16_t& x : a) r.a.push_back(to_float(x));
  for (const bf16_t& x : b) r.b.push_back(to_float(x));
  r.c = c;
  r.d.assign(c.size(), 0.f);
  r.map_a.assign(static_cast<std::size_t>(warp_size()) * T::kA, -1);
  r.map_b.assign(static_cast<std::size_t>(warp_size()) * T::kB, -1);
  r.map_c.assign(static_cast<std::size_t>(warp_size()) * T::kC, -1);
  const LaunchContext ctx;
#if defined(RW_SIMT_EMU)
  launch_kernel(&mma_chain_kernel, dim3(1), dim3(warp_size()), 0, ctx, a.data(), b.data(), c.data(), r.d.data(),
                r.map_a.data(), r.map_b.data(), r.map_c.data(), wrong_a_layout ? 1 : 0);
#else
  auto up = [](const auto& v) {
    void* p = nullptr;
    RW_GPU_CHECK(cudaMalloc(&p, v.size() * sizeof(v[0])));
    RW_GPU_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(v[0]), cudaMemcpyDefault));
    return p;
  };
  void* da = up(a);
  void* db = up(b);
  void* dc = up(c);
  void* dd = up(r.d);
  void* ma = up(r.map_a);
  void* mb = up(r.map_b);
  void* mc = up(r.map_c);
  launch_kernel(&mma_chain_kernel, dim3(1), dim3(warp_size()), 0, ctx, static_cast<const bf16_t*>(da),
                static_cast<const bf16_t*>(db), static_cast<const float*>(dc), static_cast<float*>(dd),
                static_cast<int*>(ma), static_cast<int*>(mb), static_cast<int*>(mc), wrong_a_layout ? 1 : 0);
  RW_GPU_CHECK(cudaDeviceSynchronize());
  auto down = [](auto& v, void* p) {
    RW_GPU_CHECK(cudaMemcpy(v.data(), p, v.size() * sizeof(v[0]), cudaMemcpyDefault));
    RW_GPU_CHECK(cudaFree(p));
  };
  down(r.d, dd);
  down(r.map_a, ma);
  down(r.map_b, mb);
  down(r.map_c, mc);
  RW_GPU_CHECK(cudaFree(da));
  RW_GPU_CHECK(cudaFree(db));
  RW_GPU_CHECK(cudaFree(dc));
#endif
  return r;
}

}  // namespace rw::device::gpu::RW_GPU_NS
