// vision_args.h: the argument structs of the VQGAN kernels (issue 13): 2-D convolution, GroupNorm,
// SiLU, nearest 2x upsampling, the nearest-code search and the code lookup. Conventions as in
// kernel_args.h (views with dtype and shape, visit() lists them with their access; "fp" = f32
// or bf16 storage with fp32 arithmetic).
//
// Forward only: these serve encoding and decoding (VQGAN inference); there are no backward
// kernels yet. The cpu backends and sim-gpu run them as device/cpu/vision_ops.h; the GPU
// backends (cuda, hip) and their emulations (cuda-emu, hip-emu) as device/cuda/kernels/vision.cu
// (fp32 arithmetic, GroupNorm statistics in fp32 by two passes, the same tie rule; a code out of
// range in vq_lookup is the same fatal error on every backend: vq_lookup_bad_code_message);
// Capabilities::vqgan_kernels says which backend has them (all of them today).
//
// Layout: NCHW ([batch, channels, height, width], row-major, contiguous) for every image
// tensor, and convolution weights [out_channels, in_channels, kernel_h, kernel_w]: the layout
// of PyTorch and diffusers' VQModel, so imported weights are used as stored, GroupNorm's groups
// are contiguous runs of memory, and the CPU convolution (im2col + one GEMM per image) writes
// its output rows straight into NCHW. Latent vectors (the quantizer's) lie along the channel
// axis (stride H*W); codes are [batch, height, width] in raster order (LWM's token order).
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>

#include "device/kernel_args.h"

namespace rw::device {

// y[n, co, i, j] = bias[co] + sum_{ci, a, b} w[co, ci, a, b] * xp[n, ci, i*stride + a, j*stride + b],
// xp = x zero-padded by pad_top rows above, pad_bottom below, pad_left columns left, pad_right
// right (asymmetric: "pad (0, 1) then a stride-2 convolution" is one call). x [N, Cin, H, W],
// weight [Cout, Cin, KH, KW], bias [Cout] (optional: data may be null), y [N, Cout, Hout, Wout]
// with Hout = (H + pad_top + pad_bottom - KH) / stride + 1 (floor), Wout likewise; all fp.
struct Conv2dArgs {
  static constexpr const char* kName = "conv2d";
  ConstTensorView x, weight, bias;
  TensorView y;
  int stride = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("weight", weight, Access::read);
    f("bias", bias, Access::read);
    f("y", y, Access::write);
  }
};

// GroupNorm over x [N, C, H, W] (fp): channels in `groups` contiguous groups (C % groups == 0,
// else refused); per (n, group) mean and biased variance over its C/groups * H * W values;
// y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c] (affine when weight and bias are given:
// both [C] fp, or both null), then y = silu(y) when `silu` (the norm-then-activation pair of every
// VQGAN residual block, in one pass). y has x's shape and may be x itself (in place).
struct GroupNormArgs {
  static constexpr const char* kName = "group_norm";
  ConstTensorView x, weight, bias;
  TensorView y;
  int groups = 32;
  double eps = 1e-6;
  bool silu = false;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("weight", weight, Access::read);
    f("bias", bias, Access::read);
    f("y", y, Access::write);
  }
};

// y = x * sigmoid(x) elementwise, equal element counts; fp; y may be x (in place).
struct SiluArgs {
  static constexpr const char* kName = "silu";
  ConstTensorView x;
  TensorView y;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("y", y, Access::write);
  }
};

// y[n, c, i, j] = x[n, c, i / 2, j / 2]; x [N, C, H, W], y [N, C, 2H, 2W]; fp.
struct UpsampleNearest2xArgs {
  static constexpr const char* kName = "upsample_nearest2x";
  ConstTensorView x;
  TensorView y;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("y", y, Access::write);
  }
};

// For every latent vector z[n, :, i, j] (z [N, D, H, W] fp), indices[n, i, j] = the k minimising
// sum_d (z[n, d, i, j] - codebook[k, d])^2 (codebook [K, D] fp), the lowest such k on ties;
// quantized [N, D, H, W] fp (optional: data may be null) = codebook[indices] along the channel
// axis. indices i32 [N, H, W].
struct VqNearestArgs {
  static constexpr const char* kName = "vq_nearest";
  ConstTensorView z, codebook;
  TensorView indices, quantized;
  template <class F>
  void visit(F&& f) {
    f("z", z, Access::read);
    f("codebook", codebook, Access::read);
    f("indices", indices, Access::write);
    f("quantized", quantized, Access::write);
  }
};

// out[n, :, i, j] = codebook[indices[n, i, j], :] (decoding from codes); indices i32 [N, H, W]
// in [0, K) (the caller validates codes from files), codebook [K, D] fp, out [N, D, H, W] fp.
// A code outside [0, K) is fatal on every backend, naming the first such position (t = n * H * W
// + i * W + j) in vq_lookup_bad_code_message's words: the CPU kernels check before they copy;
// the GPU kernel writes NaN there (never reads out of bounds) and records the first such
// position in a device flag, which its launcher reads back (one stream synchronisation).
struct VqLookupArgs {
  static constexpr const char* kName = "vq_lookup";
  ConstTensorView indices, codebook;
  TensorView out;
  template <class F>
  void visit(F&& f) {
    f("indices", indices, Access::read);
    f("codebook", codebook, Access::read);
    f("out", out, Access::write);
  }
};

// vq_lookup's fatal error for a code outside the codebook (the same words on every backend).
inline std::string vq_lookup_bad_code_message(int64_t code, int64_t position, int64_t codes) {
  return "vq_lookup: code " + std::to_string(code) + " at position " + std::to_string(position) +
         " is outside the codebook [0, " + std::to_string(codes) + ")";
}

// Whether an argument struct is one of the VQGAN kernels'.
template <class A>
constexpr bool is_vqgan_kernel_v =
    std::is_same_v<A, Conv2dArgs> || std::is_same_v<A, GroupNormArgs> || std::is_same_v<A, SiluArgs> ||
    std::is_same_v<A, UpsampleNearest2xArgs> || std::is_same_v<A, VqNearestArgs> || std::is_same_v<A, VqLookupArgs>;

}  // namespace rw::device
