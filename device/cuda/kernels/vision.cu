// vision.cu: the VQGAN kernels (device/vision_args.h): conv2d, group_norm, silu,
// upsample_nearest2x, vq_nearest, vq_lookup. One source for CUDA, HIP and the SIMT emulation
// (cuda-emu, hip-emu); f32 or bf16 storage, fp32 arithmetic and accumulation (common.cuh).
//
//   conv2d       a tiled direct convolution: a block computes an 8 x 8 tile of output pixels
//                for 16 output channels (256 threads: one pixel and 4 channels each); per chunk
//                of input channels it stages the input patch the tile reads (zero where the
//                padding is) and the 16 channels' weights in shared memory, then every thread
//                accumulates its 4 outputs in fp32 in (ci, a, b) order, bias first. Plainly
//                correct, not fast: a faster version is an implicit GEMM (M = output channels,
//                N = batch x output pixels, K = Cin x KH x KW, the im2col gather done while
//                loading the B tile) on the tensor / matrix cores (mma.h) with bf16 operands,
//                fp32 accumulators and double-buffered tiles, as the fused attention kernels do.
//   group_norm   one block per (n, group): mean, then the variance as the mean of squared
//                deviations from it (two passes, fp32, block_sum: fixed order), then normalise,
//                affine and optional SiLU in a third pass; y may be x.
//   vq_nearest   one thread per latent vector; the codebook streams through shared memory in
//                tiles of 16 codes x 64 dimensions; each distance is sum_d (z_d - c_d)^2 in fp32
//                in increasing d, the same operations for every code, so identical codes (and
//                codes at mirrored positions, as z = 0 between e and -e) get bit-identical
//                distances and the strict < keeps the lowest index: the contract's tie rule
//                holds exactly for ties that are exact in fp32. (||z||^2 - 2 z.c + ||c||^2 would
//                not: its roundings differ per code.) Parallel over vectors only: a 16 x 16 latent
//                grid is one block, so a single image leaves most of a GPU idle; a faster version
//                would split the codebook over blocks and merge (distance, index) pairs, lowest
//                index first on ties.
//   vq_lookup    a thread per output element; a code outside [0, K) gives NaN (never a read out
//                of bounds), and a grid-stride pass over the codes puts each bad one's position
//                into a 64-bit flag in the workspace by an integer atomic minimum of
//                (position << 32 | code): the first bad position wins whatever the thread order. The launcher resets the flag (a one-thread kernel),
//                reads it back after the lookup (one stream synchronisation: decoding reads its
//                frames back next anyway) and stops with the CPU's fatal error.
//   silu, upsample_nearest2x   grid-stride elementwise.
// Every reduction runs in an order fixed by the shapes: the same bits every run.
#include <cmath>

#include "device/cuda/barrier_tags.h"
#include "device/cuda/kernels/common.cuh"
#include "device/vision_args.h"
#include "src/common/fatal.h"

namespace rw::device::gpu::RW_GPU_NS {
namespace {

__device__ __forceinline__ float silu_of(float v) { return v / (1.f + expf(-v)); }

// ---- conv2d ----

constexpr int kConvTileH = 8, kConvTileW = 8;        // output pixels per block
constexpr int kConvTilePixels = kConvTileH * kConvTileW;
constexpr int kConvTileCo = 16;                      // output channels per block
constexpr int kConvCoPerThread = 4;                  // kConvTileCo * kConvTilePixels / kConvThreads
constexpr int kConvThreads = kConvTilePixels * kConvTileCo / kConvCoPerThread;
constexpr int kConvMaxChannelsPerChunk = 8;
constexpr int64_t kConvSmemBytes = 48 * 1024;        // the default limit everywhere

struct ConvShape {
  int64_t batch, cin, h, w, cout, hout, wout;
  int kh, kw, stride, pad_top, pad_left;
  int chunk;             // input channels per shared-memory chunk
  int patch_h, patch_w;  // the input rows / columns an output tile reads
  int64_t tiles_w;       // output tiles per row
};

// grid (output tiles, output-channel tiles, batch), kConvThreads threads; dynamic shared memory:
// patch [chunk][patch_h][patch_w] then weights [kConvTileCo][chunk][kh][kw].
__global__ void conv2d_kernel(FpIn x, FpIn weight, FpIn bias, int has_bias, FpOut y, ConvShape s) {
  float* patch = dynamic_shared<float>();
  float* wtile = patch + s.chunk * s.patch_h * s.patch_w;
  const int tid = static_cast<int>(threadIdx.x);
  const int pix = tid % kConvTilePixels, cog = tid / kConvTilePixels;  // channels cog + 4 j
  const int64_t oi0 = static_cast<int64_t>(blockIdx.x) / s.tiles_w * kConvTileH;
  const int64_t oj0 = static_cast<int64_t>(blockIdx.x) % s.tiles_w * kConvTileW;
  const int64_t oi = oi0 + pix / kConvTileW, oj = oj0 + pix % kConvTileW;
  const int64_t co0 = static_cast<int64_t>(blockIdx.y) * kConvTileCo;
  const int64_t in_i0 = oi0 * s.stride - s.pad_top, in_j0 = oj0 * s.stride - s.pad_left;
  const int kk = s.kh * s.kw, patch_size = s.patch_h * s.patch_w;
  const int pr = pix / kConvTileW * s.stride, pc = pix % kConvTileW * s.stride;  // the pixel's patch corner
  for (int64_t n = blockIdx.z; n < s.batch; n += gridDim.z) {
    float acc[kConvCoPerThread];
    for (int j = 0; j < kConvCoPerThread; ++j) {
      const int64_t co = co0 + cog + kConvTileCo / kConvCoPerThread * j;
      acc[j] = has_bias && co < s.cout ? bias[co] : 0.f;
    }
    for (int64_t ci0 = 0; ci0 < s.cin; ci0 += s.chunk) {
      const int cis = static_cast<int>(s.cin - ci0 < s.chunk ? s.cin - ci0 : s.chunk);
      for (int e = tid; e < cis * patch_size; e += blockDim.x) {
        const int c = e / patch_size, r = e % patch_size / s.patch_w, q = e % s.patch_w;
        const int64_t ii = in_i0 + r, jj = in_j0 + q;
        patch[e] = ii >= 0 && ii < s.h && jj >= 0 && jj < s.w ? x[((n * s.cin + ci0 + c) * s.h + ii) * s.w + jj] : 0.f;
      }
      for (int e = tid; e < kConvTileCo * cis * kk; e += blockDim.x) {
        const int o = e / (cis * kk), rest = e % (cis * kk);  // rest = c * kk + a * kw + b
        const int64_t co = co0 + o;
        wtile[o * s.chunk * kk + rest] = co < s.cout ? weight[(co * s.cin + ci0) * kk + rest] : 0.f;
      }
      RW_SYNCTHREADS(kBarrierConvTileLoaded);
      for (int c = 0; c < cis; ++c)
        for (int a = 0; a < s.kh; ++a)
          for (int b = 0; b < s.kw; ++b) {
            const float v = patch[(c * s.patch_h + pr + a) * s.patch_w + pc + b];
            const int wk = c * kk + a * s.kw + b;
            for (int j = 0; j < kConvCoPerThread; ++j)
              acc[j] += wtile[(cog + kConvTileCo / kConvCoPerThread * j) * s.chunk * kk + wk] * v;
          }
      RW_SYNCTHREADS(kBarrierConvTileConsumed);
    }
    if (oi < s.hout && oj < s.wout)
      for (int j = 0; j < kConvCoPerThread; ++j) {
        const int64_t co = co0 + cog + kConvTileCo / kConvCoPerThread * j;
        if (co < s.cout) y.store(((n * s.cout + co) * s.hout + oi) * s.wout + oj, acc[j]);
      }
  }
}

static_assert(kConvThreads == 256, "conv2d: 256 threads per block");

// ---- group_norm ----

// One block per (n, group) (block-stride); count = per_group * pixels values per group.
__global__ void group_norm_kernel(FpIn x, FpIn weight, FpIn bias, int affine, FpOut y, int64_t n_groups_total,
                                  int64_t groups, int64_t per_group, int64_t pixels, float eps, int silu) {
  __shared__ float scratch[kThreads / 32];
  const int64_t count = per_group * pixels;
  for (int64_t ng = blockIdx.x; ng < n_groups_total; ng += gridDim.x) {
    const int64_t offset = ng * count, c0 = ng % groups * per_group;
    float sum = 0.f;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += x[offset + i];
    const float mean = block_sum(sum, scratch) / static_cast<float>(count);
    float squares = 0.f;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      const float d = x[offset + i] - mean;
      squares += d * d;
    }
    const float var = block_sum(squares, scratch) / static_cast<float>(count);
    const float inv = 1.f / sqrtf(var + eps);
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      const int64_t c = c0 + i / pixels;
      const float scale = affine ? inv * weight[c] : inv, shift = affine ? bias[c] : 0.f;
      const float v = (x[offset + i] - mean) * scale + shift;
      y.store(offset + i, silu ? silu_of(v) : v);
    }
  }
}

// ---- silu, upsampling ----

__global__ void silu_kernel(FpIn x, FpOut y, int64_t n) {
  for (int64_t i = global_thread_x(); i < n; i += grid_threads_x()) y.store(i, silu_of(x[i]));
}

// y [planes, 2h, 2w] from x [planes, h, w].
__global__ void upsample_nearest2x_kernel(FpIn x, FpOut y, int64_t n_out, int64_t h, int64_t w) {
  for (int64_t i = global_thread_x(); i < n_out; i += grid_threads_x()) {
    const int64_t plane = i / (4 * h * w), r = i / (2 * w) % (2 * h), c = i % (2 * w);
    y.store(i, x[(plane * h + r / 2) * w + c / 2]);
  }
}

// ---- vq_nearest, vq_lookup ----

constexpr int kVqCodeTile = 16, kVqDimTile = 64;

// A thread per latent vector t = n * pixels + p (z [N, dim, pixels]); block-stride over groups
// of blockDim.x vectors so that every thread of a block takes part in every tile load.
__global__ void vq_nearest_kernel(FpIn z, FpIn codebook, int32_t* indices, FpOut quantized, int has_quantized,
                                  int64_t vectors, int64_t dim, int64_t pixels, int64_t codes) {
  __shared__ float tile[kVqCodeTile * kVqDimTile];  // [code][d]
  const int tid = static_cast<int>(threadIdx.x);
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.x; base < vectors;
       base += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = base + tid;
    const bool active = t < vectors;
    const int64_t zbase = active ? t / pixels * dim * pixels + t % pixels : 0;
    int64_t best = 0;
    float best_distance = 0.f;
    for (int64_t k0 = 0; k0 < codes; k0 += kVqCodeTile) {
      const int kn = static_cast<int>(codes - k0 < kVqCodeTile ? codes - k0 : kVqCodeTile);
      float acc[kVqCodeTile];
      for (int k = 0; k < kVqCodeTile; ++k) acc[k] = 0.f;
      for (int64_t d0 = 0; d0 < dim; d0 += kVqDimTile) {
        const int dn = static_cast<int>(dim - d0 < kVqDimTile ? dim - d0 : kVqDimTile);
        for (int e = tid; e < kVqCodeTile * kVqDimTile; e += blockDim.x) {
          const int k = e / kVqDimTile, d = e % kVqDimTile;
          tile[e] = k < kn && d < dn ? codebook[(k0 + k) * dim + d0 + d] : 0.f;
        }
        RW_SYNCTHREADS(kBarrierVqTileLoaded);
        if (active)
          for (int d = 0; d < dn; ++d) {
            const float zd = z[zbase + (d0 + d) * pixels];
            for (int k = 0; k < kVqCodeTile; ++k) {
              const float diff = zd - tile[k * kVqDimTile + d];
              acc[k] += diff * diff;
            }
          }
        __syncthreads();  // every thread is done with the tile
      }
      for (int k = 0; k < kVqCodeTile; ++k)
        if (k < kn && (k0 + k == 0 || acc[k] < best_distance)) {  // strict: ties keep the lowest index
          best = k0 + k;
          best_distance = acc[k];
        }
    }
    if (active) {
      indices[t] = static_cast<int32_t>(best);
      if (has_quantized)
        for (int64_t d = 0; d < dim; ++d) quantized.store(zbase + d * pixels, codebook[best * dim + d]);
    }
  }
}

// vq_lookup's flag: no bad code seen.
constexpr unsigned long long kNoBadCode = ~0ull;

__global__ void vq_flag_reset_kernel(unsigned long long* first_bad) {
  if (global_thread_x() == 0) *first_bad = kNoBadCode;
}

// out [N, dim, pixels] element i = codebook[indices[n, p], d], NaN for a bad code; and for each
// bad code at position t = n * pixels + p, first_bad = min(first_bad, t << 32 | code bits)
// (positions < 2^32: the launcher checks).
__global__ void vq_lookup_kernel(const int32_t* indices, FpIn codebook, FpOut out, int64_t n_out, int64_t dim,
                                 int64_t pixels, int64_t codes, int64_t positions, unsigned long long* first_bad) {
  for (int64_t t = global_thread_x(); t < positions; t += grid_threads_x()) {
    const int32_t code = indices[t];
    if (code < 0 || code >= codes)
      atomic_min_u64(first_bad, static_cast<unsigned long long>(t) << 32 | static_cast<uint32_t>(code));
  }
  for (int64_t i = global_thread_x(); i < n_out; i += grid_threads_x()) {
    const int64_t n = i / (dim * pixels), d = i / pixels % dim, p = i % pixels;
    const int32_t code = indices[n * pixels + p];
    out.store(i, code >= 0 && code < codes ? codebook[static_cast<int64_t>(code) * dim + d] : bits_float(0x7fc00000u));
  }
}

dim3 elementwise_grid(int64_t n) { return dim3(grid_for(n, kThreads * 4)); }

}  // namespace

void run(Conv2dArgs& a, const LaunchContext& ctx) {
  ConvShape s{};
  s.batch = a.x.shape[0];
  s.cin = a.x.shape[1];
  s.h = a.x.shape[2];
  s.w = a.x.shape[3];
  s.cout = a.weight.shape[0];
  s.kh = static_cast<int>(a.weight.shape[2]);
  s.kw = static_cast<int>(a.weight.shape[3]);
  s.hout = a.y.shape[2];
  s.wout = a.y.shape[3];
  s.stride = a.stride;
  s.pad_top = a.pad_top;
  s.pad_left = a.pad_left;
  s.patch_h = (kConvTileH - 1) * a.stride + s.kh;
  s.patch_w = (kConvTileW - 1) * a.stride + s.kw;
  const int64_t floats_per_channel = static_cast<int64_t>(s.patch_h) * s.patch_w + int64_t{kConvTileCo} * s.kh * s.kw;
  const int64_t fit = kConvSmemBytes / static_cast<int64_t>(sizeof(float)) / floats_per_channel;
  RW_CHECK(fit >= 1, std::string("conv2d (GPU): a ") + std::to_string(s.kh) + "x" + std::to_string(s.kw) +
                         " kernel at stride " + std::to_string(a.stride) + " needs more than 48 KiB of shared memory");
  s.chunk = static_cast<int>(fit < kConvMaxChannelsPerChunk ? fit : kConvMaxChannelsPerChunk);
  s.tiles_w = (s.wout + kConvTileW - 1) / kConvTileW;
  const int64_t tiles = (s.hout + kConvTileH - 1) / kConvTileH * s.tiles_w;
  const int64_t co_tiles = (s.cout + kConvTileCo - 1) / kConvTileCo;
  RW_CHECK(tiles < (int64_t{1} << 31) && co_tiles <= 65535,
           "conv2d (GPU): output too large for one launch (" + std::to_string(tiles) + " pixel tiles, " +
               std::to_string(co_tiles) + " channel tiles)");
  if (s.batch == 0 || tiles == 0 || co_tiles == 0) return;
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(co_tiles),
                  static_cast<unsigned>(s.batch < 65535 ? s.batch : 65535));
  const std::size_t smem = static_cast<std::size_t>(s.chunk * floats_per_channel) * sizeof(float);
  launch_kernel(&conv2d_kernel, grid, dim3(kConvThreads), smem, ctx, fp_in(a.x), fp_in(a.weight), fp_in(a.bias),
                a.bias.data != nullptr ? 1 : 0, fp_out(a.y), s);
}

void run(GroupNormArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.x.shape[0], channels = a.x.shape[1], pixels = a.x.shape[2] * a.x.shape[3];
  const int64_t total = n * a.groups;
  launch_kernel(&group_norm_kernel, dim3(grid_for(total, 1)), dim3(kThreads), 0, ctx, fp_in(a.x), fp_in(a.weight),
                fp_in(a.bias), a.weight.data != nullptr ? 1 : 0, fp_out(a.y), total, int64_t{a.groups},
                channels / a.groups, pixels, static_cast<float>(a.eps), a.silu ? 1 : 0);
}

void run(SiluArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.x.n_elements();
  launch_kernel(&silu_kernel, elementwise_grid(n), dim3(kThreads), 0, ctx, fp_in(a.x), fp_out(a.y), n);
}

void run(UpsampleNearest2xArgs& a, const LaunchContext& ctx) {
  const int64_t n_out = a.y.n_elements();
  launch_kernel(&upsample_nearest2x_kernel, elementwise_grid(n_out), dim3(kThreads), 0, ctx, fp_in(a.x), fp_out(a.y),
                n_out, a.x.shape[2], a.x.shape[3]);
}

void run(VqNearestArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.z.shape[0], dim = a.z.shape[1], pixels = a.z.shape[2] * a.z.shape[3];
  const int64_t codes = a.codebook.shape[0];
  launch_kernel(&vq_nearest_kernel, dim3(grid_for(n * pixels, kThreads)), dim3(kThreads), 0, ctx, fp_in(a.z),
                fp_in(a.codebook), a.indices.as<int32_t>(), fp_out(a.quantized), a.quantized.data != nullptr ? 1 : 0,
                n * pixels, dim, pixels, codes);
}

void run(VqLookupArgs& a, const LaunchContext& ctx) {
  const int64_t n_out = a.out.n_elements(), dim = a.codebook.shape[1], codes = a.codebook.shape[0];
  const int64_t pixels = a.out.shape[2] * a.out.shape[3], positions = a.indices.n_elements();
  RW_CHECK(positions < (int64_t{1} << 32), "vq_lookup (GPU): more than 2^32 codes in one call");
  if (positions == 0) return;
  auto* first_bad = static_cast<unsigned long long*>(ctx.workspace->get(sizeof(unsigned long long)));
  launch_kernel(&vq_flag_reset_kernel, dim3(1), dim3(1), 0, ctx, first_bad);
  launch_kernel(&vq_lookup_kernel, elementwise_grid(n_out > positions ? n_out : positions), dim3(kThreads), 0, ctx,
                a.indices.as<int32_t>(), fp_in(a.codebook), fp_out(a.out), n_out, dim, pixels, codes, positions,
                first_bad);
  unsigned long long flag = kNoBadCode;
  copy_to_host_after_stream(&flag, first_bad, sizeof flag, ctx);
  if (flag != kNoBadCode)
    RW_FAIL(vq_lookup_bad_code_message(static_cast<int32_t>(static_cast<uint32_t>(flag & 0xffffffffu)),
                                       static_cast<int64_t>(flag >> 32), codes));
}

}  // namespace rw::device::gpu::RW_GPU_NS
