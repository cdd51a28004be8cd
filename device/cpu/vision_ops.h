// vision_ops.h: the CPU implementations of the VQGAN kernels (device/vision_args.h has their
// definitions), in fp32 on contiguous NCHW host arrays. cpu_kernels.cpp calls them after its
// generic bf16 conversion; the cpu backends run them at submission, sim-gpu on its stream
// workers.
//
//   conv2d       im2col of a block of output rows into a buffer (at most kConvColumnFloats
//                floats), then y_block (Cout x rows*Wout, inside y with ld Hout*Wout) = W (Cout x
//                Cin*KH*KW) * col, bias preloaded (beta 1), in tiles of kConvTileChannels x
//                kConvTileColumns outputs over the OpenMP threads, each tile one single-threaded
//                OpenBLAS sgemm. A 1x1 stride-1 unpadded convolution multiplies x itself.
//                The tiles are ours (fixed sizes), not OpenBLAS's thread partition: OpenBLAS's
//                bits change with its thread count (measured: `vqgan init` fitted a different
//                codebook with OPENBLAS_NUM_THREADS 1 and 2), these do not.
//   group_norm   per (image, group): mean and biased variance in fp64 (two passes), then
//                y = (x - mean) * rsqrt(var + eps) * w + b [, silu] per element.
//   silu         y = x / (1 + exp(-x)) in fp32.
//   vq_nearest   per latent vector, the squared L2 distance to every code in fp64 (differences,
//                not the expanded |z|^2 - 2 z.e + |e|^2, so an exact match is exactly 0), the
//                first minimum kept (ties to the lowest index).
// Parallel over tiles/images/groups/vectors with OpenMP; each output is computed by one thread in
// a fixed order, so results do not depend on the thread count (OpenMP's or OpenBLAS's).
#pragma once
#include <cstdint>

namespace rw::device::cpu {

struct Conv2dShape {
  int64_t batch = 0, in_channels = 0, height = 0, width = 0;
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  int stride = 1, pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t out_height() const { return (height + pad_top + pad_bottom - kernel_h) / stride + 1; }
  int64_t out_width() const { return (width + pad_left + pad_right - kernel_w) / stride + 1; }
};

// The im2col buffer's size limit per thread (floats): 8 Mi floats = 32 MiB.
constexpr int64_t kConvColumnFloats = int64_t(8) << 20;
// The output tile of one task (output channels x output pixels), fixed so that the bits do not
// depend on the thread count: a 768-channel 16x16 layer has 6 tasks, a 128-channel 256x256
// layer 4 per row block of 28 rows. Measured (perf/bench_vqgan, 2 cores): as fast as one
// OpenBLAS call per row block at 1 and 2 threads; 512 columns cost 5-15% at 1 thread (more
// calls, the weights packed again per tile). With many threads per rank, the small layers
// leave some idle.
constexpr int64_t kConvTileChannels = 128;
constexpr int64_t kConvTileColumns = 2048;

// bias may be null.
void conv2d_forward(const float* x, const float* weight, const float* bias, float* y, const Conv2dShape& s);

// weight, bias: both null or both [channels]; y may equal x.
void group_norm_forward(const float* x, const float* weight, const float* bias, float* y, int64_t batch,
                        int64_t channels, int64_t pixels, int64_t groups, double eps, bool silu);

// y may equal x.
void silu_forward(const float* x, float* y, int64_t n);

// x [planes, h, w] -> y [planes, 2h, 2w] (planes = batch * channels).
void upsample_nearest2x(const float* x, float* y, int64_t planes, int64_t h, int64_t w);

// z [batch, dim, pixels], codebook [codes, dim] -> indices [batch, pixels]; quantized
// [batch, dim, pixels] (may be null).
void vq_nearest(const float* z, const float* codebook, int32_t* indices, float* quantized, int64_t batch,
                int64_t dim, int64_t pixels, int64_t codes);

// indices [batch, pixels] in [0, codes) (else fatal), codebook [codes, dim] -> out [batch, dim, pixels].
void vq_lookup(const int32_t* indices, const float* codebook, float* out, int64_t batch, int64_t dim,
               int64_t pixels, int64_t codes);

}  // namespace rw::device::cpu
