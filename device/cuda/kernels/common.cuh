// common.cuh: what the kernel files share: typed views of fp tensors whose storage (f32 or bf16)
// is chosen at run time, grid-stride indexing, workspace carving, and the launcher entry points
// of each kernel family (one definition per .cu file, dispatched by dispatch.cu).
//
// Storage choice at run time: the elementwise and row kernels are memory-bound, so a uniform
// branch on the dtype per element costs nothing measurable and saves a template instantiation
// per combination of argument types; the GEMM kernel, where it would matter, is templated.
#pragma once
#include <cstdint>

#include "device/attention_args.h"
#include "device/cuda/simt.h"
#include "device/kernel_args.h"
#include "device/kernel_call.h"
#include "device/vision_args.h"

namespace rw::device::gpu::RW_GPU_NS {

// A read-only fp tensor: f32 or bf16 storage, read as fp32.
struct FpIn {
  const void* p = nullptr;
  int is_bf16 = 0;
  __device__ __forceinline__ float operator[](int64_t i) const {
    return is_bf16 ? to_float(static_cast<const bf16_t*>(p)[i]) : static_cast<const float*>(p)[i];
  }
};

// A writable fp tensor: stores round to its storage (bf16: nearest even).
struct FpOut {
  void* p = nullptr;
  int is_bf16 = 0;
  __device__ __forceinline__ float load(int64_t i) const {
    return is_bf16 ? to_float(static_cast<const bf16_t*>(p)[i]) : static_cast<const float*>(p)[i];
  }
  __device__ __forceinline__ void store(int64_t i, float v) const {
    if (is_bf16)
      static_cast<bf16_t*>(p)[i] = from_float<bf16_t>(v);
    else
      static_cast<float*>(p)[i] = v;
  }
};

inline FpIn fp_in(const ConstTensorView& v) { return FpIn{v.data, v.dtype == DType::bf16}; }
inline FpIn fp_in(const TensorView& v) { return FpIn{v.data, v.dtype == DType::bf16}; }
inline FpOut fp_out(const TensorView& v) { return FpOut{v.data, v.dtype == DType::bf16}; }

__device__ __forceinline__ int64_t global_thread_x() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads_x() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

constexpr int kThreads = 256;  // threads per block of the elementwise and row kernels (whole warps at 32 and 64)

// Carves one workspace request into aligned pieces: add() the sizes, then take() them in order.
class WorkspacePlan {
 public:
  std::size_t add(std::size_t n_bytes) {
    const std::size_t offset = total_;
    total_ += (n_bytes + 255) / 256 * 256;
    return offset;
  }
  std::size_t total() const { return total_; }

 private:
  std::size_t total_ = 0;
};

// ---- launchers (one per kernel; each file defines its family) ----

// elementwise.cu
void run(FillArgs& a, const LaunchContext& ctx);
void run(AddArgs& a, const LaunchContext& ctx);
void run(AxpyArgs& a, const LaunchContext& ctx);
void run(ScaleArgs& a, const LaunchContext& ctx);
void run(ConvertArgs& a, const LaunchContext& ctx);
void run(RopeFwdArgs& a, const LaunchContext& ctx);
void run(RopeBwdArgs& a, const LaunchContext& ctx);
void run(SwigluFwdArgs& a, const LaunchContext& ctx);
void run(SwigluBwdArgs& a, const LaunchContext& ctx);
void run(EmbeddingFwdArgs& a, const LaunchContext& ctx);
void run(AdamWArgs& a, const LaunchContext& ctx);
// fp32 copy / conversion of n contiguous elements (the attention path's bf16 inputs).
void convert_to_f32(const void* x, DType dtype, float* y, int64_t n, const LaunchContext& ctx);
void fill_f32(float* x, int64_t n, float value, const LaunchContext& ctx);

// rows.cu
void run(RmsNormFwdArgs& a, const LaunchContext& ctx);
void run(RmsNormBwdArgs& a, const LaunchContext& ctx);
void run(CrossEntropyArgs& a, const LaunchContext& ctx);
void run(SumSquaresArgs& a, const LaunchContext& ctx);
void run(SumArgs& a, const LaunchContext& ctx);
void run(ArgmaxArgs& a, const LaunchContext& ctx);
void run(EmbeddingBwdArgs& a, const LaunchContext& ctx);

// gemm.cu: row-major C = alpha op(A) op(B) + beta C for `batch` matrices at fixed strides
// (elements); fp32 accumulation; C is not read when beta == 0.
struct GemmDesc {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.f, beta = 0.f;
  const void* a = nullptr;
  DType a_type = DType::f32;
  int64_t lda = 0, stride_a = 0;
  const void* b = nullptr;
  DType b_type = DType::f32;
  int64_t ldb = 0, stride_b = 0;
  void* c = nullptr;
  DType c_type = DType::f32;
  int64_t ldc = 0, stride_c = 0;
  int64_t batch = 1;
};
// cuBLAS (or hipBLAS) when the build has it and A and B share a type; otherwise the own kernel.
void gemm(const GemmDesc& g, const LaunchContext& ctx);
// The project's tiled kernel (any type mix): the portable path and the GPU-side reference.
void gemm_tiled(const GemmDesc& g, const LaunchContext& ctx);
void run(GemmArgs& a, const LaunchContext& ctx);

// attention.cu (the reference path; the forward and backward hand bf16 steps to the fused
// kernels when attn_fwd_fused_applies / attn_bwd_fused_applies)
void run(AttnFwdStepArgs& a, const LaunchContext& ctx);
void run(AttnBwdStepArgs& a, const LaunchContext& ctx);
void run(AttnRowDotArgs& a, const LaunchContext& ctx);
void run(AttnMergeArgs& a, const LaunchContext& ctx);

// attention_fused.cu: bf16 q/k/v, head_dim 64 or 128, when ctx.attn_fused.
bool attn_fwd_fused_applies(const AttnFwdStepArgs& a, const LaunchContext& ctx);
void attn_fwd_fused(const AttnFwdStepArgs& a, const LaunchContext& ctx);

// attention_fused_bwd.cu: bf16 q/k/v/dout, head_dim 64 or 128, when ctx.attn_bwd_fused.
bool attn_bwd_fused_applies(const AttnBwdStepArgs& a, const LaunchContext& ctx);
void attn_bwd_fused(const AttnBwdStepArgs& a, const LaunchContext& ctx);

// vision.cu (the VQGAN kernels)
void run(Conv2dArgs& a, const LaunchContext& ctx);
void run(GroupNormArgs& a, const LaunchContext& ctx);
void run(SiluArgs& a, const LaunchContext& ctx);
void run(UpsampleNearest2xArgs& a, const LaunchContext& ctx);
void run(VqNearestArgs& a, const LaunchContext& ctx);
void run(VqLookupArgs& a, const LaunchContext& ctx);

}  // namespace rw::device::gpu::RW_GPU_NS
