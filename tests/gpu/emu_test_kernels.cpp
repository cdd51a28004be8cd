// emu_test_kernels.cpp: see emu_test_kernels.h. Compiled as emulated device code (vendor.h's
// RW_SIMT_EMU) once per warp size.
#include "tests/gpu/emu_test_kernels.h"

#include "device/cuda/launch_context.h"
#include "device/cuda/simt.h"
#include "tests/gpu/mma_test_kernels.cuh"

namespace rw::device::gpu::RW_GPU_NS {
namespace {

__global__ void warp_ops_kernel(int* lane, int* xor3, int* down5_w8, int* up2_w16, int* index7, int* index_w4,
                                uint64_t* ballot_mod3, int* any_is_40, int* all_below_n, float* wsum, float* bsum) {
  __shared__ float scratch[1024 / 32];
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  const int v = 10 * t;
  lane[t] = lane_id();
  xor3[t] = shfl_xor(v, 3);
  down5_w8[t] = shfl_down(v, 5u, 8);
  up2_w16[t] = shfl_up(v, 2u, 16);
  index7[t] = shfl(v, 7);
  index_w4[t] = shfl(v, 6, 4);  // 6 mod 4 = lane 2 of each group of 4
  ballot_mod3[t] = static_cast<uint64_t>(ballot(t % 3 == 0));
  any_is_40[t] = any(t == 40);
  all_below_n[t] = all(t < n);
  wsum[t] = warp_sum(static_cast<float>(t));
  bsum[t] = block_sum(static_cast<float>(t), scratch);
}

__global__ void order_kernel(int* order, int* next_slot) {
  // The emulation runs every fiber of a block on one OS thread and switches only at
  // synchronisation points, so this unsynchronised counter is exact there (on a GPU it would race).
  order[(*next_slot)++] = static_cast<int>(threadIdx.x);
}

__global__ void reverse_kernel(const float* in, float* out, int with_barrier) {
  float* s = dynamic_shared<float>();
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  s[t] = in[t];
  if (with_barrier) __syncthreads();
  out[t] = s[n - 1 - t];
}

__global__ void divergent_barrier_kernel() {
  if (threadIdx.x < blockDim.x / 2) __syncthreads();
}

__global__ void divergent_shuffle_kernel(int* out) {
  if (lane_id() < 8) out[threadIdx.x] = shfl_xor(1, 1);
}

__global__ void mismatched_kernel(int* out) {
  if (lane_id() % 2 == 0)
    out[threadIdx.x] = shfl_xor(1, 1);
  else
    out[threadIdx.x] = static_cast<int>(ballot(true) & 1u);
}

}  // namespace

rw::test::simt::WarpOps run_warp_ops(int n_threads) {
  rw::test::simt::WarpOps r;
  r.warp_size = warp_size();
  const std::size_t n = static_cast<std::size_t>(n_threads);
  for (auto* v : {&r.lane, &r.xor3, &r.down5_w8, &r.up2_w16, &r.index7, &r.index_w4, &r.any_is_40, &r.all_below_n})
    v->assign(n, -1);
  r.ballot_mod3.assign(n, 0);
  r.warp_sum.assign(n, -1.f);
  r.block_sum.assign(n, -1.f);
  const LaunchContext ctx;
  launch_kernel(&warp_ops_kernel, dim3(1), dim3(static_cast<unsigned>(n_threads)), 0, ctx, r.lane.data(), r.xor3.data(),
                r.down5_w8.data(), r.up2_w16.data(), r.index7.data(), r.index_w4.data(), r.ballot_mod3.data(),
                r.any_is_40.data(), r.all_below_n.data(), r.warp_sum.data(), r.block_sum.data());
  return r;
}

std::vector<int> run_order(int n_threads) {
  std::vector<int> order(static_cast<std::size_t>(n_threads), -1);
  int next_slot = 0;
  launch_kernel(&order_kernel, dim3(1), dim3(static_cast<unsigned>(n_threads)), 0, LaunchContext{}, order.data(),
                &next_slot);
  return order;
}

std::vector<float> run_reverse(const std::vector<float>& in, bool with_barrier) {
  std::vector<float> out(in.size(), 0.f);
  launch_kernel(&reverse_kernel, dim3(1), dim3(static_cast<unsigned>(in.size())), in.size() * sizeof(float),
                LaunchContext{}, in.data(), out.data(), with_barrier ? 1 : 0);
  return out;
}

void run_divergent_barrier() { launch_kernel(&divergent_barrier_kernel, dim3(2), dim3(128), 0, LaunchContext{}); }

void run_divergent_shuffle() {
  std::vector<int> out(128, 0);
  launch_kernel(&divergent_shuffle_kernel, dim3(1), dim3(128), 0, LaunchContext{}, out.data());
}

void run_mismatched_warp_ops() {
  std::vector<int> out(128, 0);
  launch_kernel(&mismatched_kernel, dim3(1), dim3(128), 0, LaunchContext{}, out.data());
}

}  // namespace rw::device::gpu::RW_GPU_NS
