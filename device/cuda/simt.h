// simt.h: the portable layer every kernel of device/cuda/kernels/ uses instead of vendor
// intrinsics: warp size (a constexpr function, never a literal), lane masks, shuffles, votes,
// warp and block reductions in a fixed order (deterministic), named barriers, dynamic shared
// memory, bf16 storage conversions, and the launch wrapper. Each is spelled once per toolchain
// here (vendor.h says which), so kernels contain no #if on the vendor.
//
// Everything lives in rw::device::gpu::RW_GPU_NS (vendor.h): the two emulated warp sizes are two
// compilations of the same kernels into one program.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>

#include "device/cuda/barrier_tags.h"
#include "device/cuda/launch_context.h"
#include "device/cuda/vendor.h"
#include "device/dtype.h"
#include "src/common/fatal.h"

#if defined(RW_SIMT_EMU)
#define RW_HD
#else
#define RW_HD __host__ __device__
#endif

// Asks the device compiler to unroll the next loop wholly (its trip count a constant), so that
// register arrays indexed by its variable stay in registers; nothing under the emulation.
#if defined(RW_SIMT_EMU)
#define RW_UNROLL
#else
#define RW_UNROLL _Pragma("unroll")
#endif

// Checks a CUDA/HIP runtime call (evaluated once); on failure ends the job naming the call,
// file, line and the error (src/common/fatal.h).
#define RW_GPU_CHECK(call)                                                                                    \
  do {                                                                                                        \
    const cudaError_t rw_gpu_status_ = (call);                                                                \
    if (rw_gpu_status_ != cudaSuccess)                                                                        \
      ::rw::fatal(#call, __FILE__, __LINE__,                                                                  \
                  std::string(cudaGetErrorName(rw_gpu_status_)) + ": " + cudaGetErrorString(rw_gpu_status_)); \
  } while (0)

// A block-wide barrier with a name (tag > 0, from BarrierTag) that the emulation's test hook can
// drop (simt_emu.h: drop_barrier_for_test); on a GPU it is __syncthreads().
#if defined(RW_SIMT_EMU)
#define RW_SYNCTHREADS(tag) ::rw::simt::emu::sync_block(static_cast<int>(tag))
#else
#define RW_SYNCTHREADS(tag) __syncthreads()
#endif

namespace rw::device::gpu {

namespace RW_GPU_NS {

using device::bf16_t;

// ---- warps ----

RW_HD constexpr int warp_size() {
#if defined(RW_SIMT_EMU)
  return RW_SIMT_EMU_WARP;
#elif defined(RW_GPU_HIP)
  return 64;  // CDNA wavefronts (gfx90a, gfx942); RDNA's wave32 is not a target
#else
  return 32;
#endif
}
static_assert(warp_size() == 32 || warp_size() == 64, "warp size");

// A bit per lane: 32-bit on NVIDIA, 64-bit where warps have 64 lanes.
using lane_mask_t = std::conditional_t<warp_size() == 64, uint64_t, uint32_t>;

__device__ __forceinline__ int lane_id() {
#if defined(RW_SIMT_EMU)
  return ::rw::simt::emu::lane_id();
#else
  return static_cast<int>((threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % warp_size());
#endif
}

#if defined(RW_SIMT_EMU)
namespace emu_detail {
enum ShuffleKind : int { kXor = 1, kDown = 2, kUp = 3, kIndex = 4 };
template <class T>
T exchange(T v, int src_lane, int kind, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffled type");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = ::rw::simt::emu::warp_exchange(bits, src_lane, kind, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
}  // namespace emu_detail
#endif

// Shuffles with CUDA's semantics, over the whole warp (all lanes must take part), width a power
// of two <= warp_size(): lanes form groups of `width`; a source outside the caller's group gives
// the caller's own value (xor, down, up), an index is taken modulo width.
template <class T>
__device__ __forceinline__ T shfl_xor(T v, int lane_mask, int width = warp_size()) {
#if defined(RW_SIMT_EMU)
  const int lane = lane_id();
  int src = lane ^ lane_mask;
  if (src >= (lane / width + 1) * width) src = lane;
  return emu_detail::exchange(v, src, emu_detail::kXor, width);
#elif defined(RW_GPU_HIP)
  return __shfl_xor(v, lane_mask, width);
#else
  return __shfl_xor_sync(0xffffffffu, v, lane_mask, width);
#endif
}

template <class T>
__device__ __forceinline__ T shfl_down(T v, unsigned delta, int width = warp_size()) {
#if defined(RW_SIMT_EMU)
  const int lane = lane_id();
  const int src = (lane % width) + static_cast<int>(delta) >= width ? lane : lane + static_cast<int>(delta);
  return emu_detail::exchange(v, src, emu_detail::kDown, width);
#elif defined(RW_GPU_HIP)
  return __shfl_down(v, delta, width);
#else
  return __shfl_down_sync(0xffffffffu, v, delta, width);
#endif
}

template <class T>
__device__ __forceinline__ T shfl_up(T v, unsigned delta, int width = warp_size()) {
#if defined(RW_SIMT_EMU)
  const int lane = lane_id();
  const int src = (lane % width) < static_cast<int>(delta) ? lane : lane - static_cast<int>(delta);
  return emu_detail::exchange(v, src, emu_detail::kUp, width);
#elif defined(RW_GPU_HIP)
  return __shfl_up(v, delta, width);
#else
  return __shfl_up_sync(0xffffffffu, v, delta, width);
#endif
}

template <class T>
__device__ __forceinline__ T shfl(T v, int src_lane, int width = warp_size()) {
#if defined(RW_SIMT_EMU)
  const int lane = lane_id();
  const int src = (lane / width) * width + ((src_lane % width) + width) % width;
  return emu_detail::exchange(v, src, emu_detail::kIndex, width);
#elif defined(RW_GPU_HIP)
  return __shfl(v, src_lane, width);
#else
  return __shfl_sync(0xffffffffu, v, src_lane, width);
#endif
}

// Votes over the whole warp.
__device__ __forceinline__ lane_mask_t ballot(bool predicate) {
#if defined(RW_SIMT_EMU)
  return static_cast<lane_mask_t>(::rw::simt::emu::warp_ballot(predicate));
#elif defined(RW_GPU_HIP)
  return __ballot(predicate);
#else
  return __ballot_sync(0xffffffffu, predicate);
#endif
}
__device__ __forceinline__ bool any(bool predicate) { return ballot(predicate) != 0; }
__device__ __forceinline__ bool all(bool predicate) {
  return ballot(predicate) == static_cast<lane_mask_t>(~lane_mask_t(0));
}

// __syncwarp: a no-op on AMD (a wavefront's lanes run in lockstep), a warp barrier elsewhere.
__device__ __forceinline__ void sync_warp() {
#if defined(RW_SIMT_EMU)
  ::rw::simt::emu::sync_warp();
#elif defined(RW_GPU_CUDA)
  __syncwarp();
#endif
}

// ---- reductions in a fixed order (the same bits every run) ----

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = warp_size() / 2; offset > 0; offset >>= 1) v += shfl_xor(v, offset);
  return v;
}
template <class T>
__device__ __forceinline__ T warp_max(T v) {
  for (int offset = warp_size() / 2; offset > 0; offset >>= 1) {
    const T other = shfl_xor(v, offset);
    v = other > v ? other : v;
  }
  return v;
}

// Sum over a 1-D block (blockDim.x a multiple of warp_size()); every thread gets the total.
// scratch: shared memory for blockDim.x / warp_size() values. Order: a butterfly within each
// warp, then the warps' sums in warp order: fixed, so the result is the same every run.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  v = warp_sum(v);
  const int warp = static_cast<int>(threadIdx.x) / warp_size();
  if (lane_id() == 0) scratch[warp] = v;
  RW_SYNCTHREADS(kBarrierReduceScratch);
  T total = scratch[0];
  const int n_warps = static_cast<int>(blockDim.x) / warp_size();
  for (int w = 1; w < n_warps; ++w) total += scratch[w];
  __syncthreads();  // scratch may be reused after this
  return total;
}

template <class T>
__device__ __forceinline__ T block_max(T v, T* scratch) {
  v = warp_max(v);
  const int warp = static_cast<int>(threadIdx.x) / warp_size();
  if (lane_id() == 0) scratch[warp] = v;
  __syncthreads();
  T best = scratch[0];
  const int n_warps = static_cast<int>(blockDim.x) / warp_size();
  for (int w = 1; w < n_warps; ++w) best = scratch[w] > best ? scratch[w] : best;
  __syncthreads();
  return best;
}

// ---- shared memory ----

// The block's dynamic shared memory (the launch's smem_bytes), as T*.
template <class T>
__device__ __forceinline__ T* dynamic_shared() {
#if defined(RW_SIMT_EMU)
  return static_cast<T*>(::rw::simt::emu::dynamic_shared_memory());
#else
  extern __shared__ __align__(16) unsigned char rw_dynamic_shared_bytes[];
  return reinterpret_cast<T*>(rw_dynamic_shared_bytes);
#endif
}

// ---- bits and bf16 storage ----

// (Device passes use the intrinsics; host passes and the emulation use memcpy.)
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
#define RW_DEVICE_PASS 1
#endif
RW_HD __forceinline__ uint32_t float_bits(float x) {
#if defined(RW_DEVICE_PASS)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
#endif
}
RW_HD __forceinline__ float bits_float(uint32_t u) {
#if defined(RW_DEVICE_PASS)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, 4);
  return x;
#endif
}

RW_HD __forceinline__ float to_float(float x) { return x; }
RW_HD __forceinline__ float to_float(bf16_t x) { return bits_float(static_cast<uint32_t>(x.bits) << 16); }

// fp32 -> storage type; bf16 rounds to nearest even, NaN stays a quiet NaN (dtype.h's rule).
template <class T>
RW_HD __forceinline__ T from_float(float x);
template <>
RW_HD __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
RW_HD __forceinline__ bf16_t from_float<bf16_t>(float x) {
  const uint32_t u = float_bits(x);
  bf16_t out;
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    out.bits = static_cast<uint16_t>((u >> 16) | 0x0040u);
  } else {
    out.bits = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  return out;
}

RW_HD __forceinline__ float neg_infinity() { return bits_float(0xff800000u); }

// ---- integer atomics ----

// *address = min(*address, value) on device memory, atomically. Integers only: the kernels use
// no floating-point atomics (their order would change results); an integer minimum is the same
// whatever order the threads come in. The emulation runs a block's threads on one OS thread,
// switching only at barriers and warp operations, and one block at a time: a plain
// read-modify-write is atomic there.
__device__ __forceinline__ void atomic_min_u64(unsigned long long* address, unsigned long long value) {
#if defined(RW_SIMT_EMU)
  if (value < *address) *address = value;
#else
  atomicMin(address, value);
#endif
}

// ---- launching ----

// Grid size for n items at `per_block` items per block, capped (kernels loop grid-stride).
inline unsigned grid_for(int64_t n, int per_block, int64_t cap = 65535) {
  int64_t blocks = (n + per_block - 1) / per_block;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

// Launches kernel<<<grid, block, smem_bytes, stream>>>(args...) on a GPU, or runs it under the
// SIMT emulation; every launch of the launchers goes through here (so kernels compile for nvcc,
// hipcc and the emulation alike). Empty grids launch nothing.
template <class... Params, class... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem_bytes, const LaunchContext& ctx,
                   Args... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel argument count");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
#if defined(RW_SIMT_EMU)
  (void)ctx;
  std::tuple<std::decay_t<Params>...> params(static_cast<std::decay_t<Params>>(args)...);
  ::rw::simt::emu::launch(grid, block, smem_bytes, warp_size(), [&] { std::apply(kernel, params); });
#else
  if (smem_bytes > 48 * 1024)  // beyond the default: opt in (Hopper: up to 227 KB; CDNA: 64 KB of LDS)
    RW_GPU_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes)));
  kernel<<<grid, block, smem_bytes, static_cast<cudaStream_t>(ctx.stream)>>>(static_cast<Params>(args)...);
  RW_GPU_CHECK(cudaGetLastError());
#endif
}

// Copies n_bytes of device memory to the host once the work enqueued on ctx.stream so far has
// finished: a stream synchronisation, for the few launchers that must check a device result
// before they return (vq_lookup's bad-code flag), never on a hot path. Under the emulation the
// kernels have already run: a plain copy.
inline void copy_to_host_after_stream(void* host, const void* device_memory, std::size_t n_bytes,
                                      const LaunchContext& ctx) {
#if defined(RW_SIMT_EMU)
  (void)ctx;
  std::memcpy(host, device_memory, n_bytes);
#else
  const auto stream = static_cast<cudaStream_t>(ctx.stream);
  RW_GPU_CHECK(cudaMemcpyAsync(host, device_memory, n_bytes, cudaMemcpyDefault, stream));
  RW_GPU_CHECK(cudaStreamSynchronize(stream));
#endif
}

}  // namespace RW_GPU_NS
}  // namespace rw::device::gpu
