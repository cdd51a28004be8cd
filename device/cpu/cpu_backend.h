// cpu_backend.h: the CPU backends. Memory is host memory (MPI reads it directly); kernels run
// at submission, so synchronize() only calls the hook once.
//   CpuBackend          fast kernels: OpenMP across (batch, head, block) tasks, vectorised
//                       online softmax; tile products by AVX-512 register tiles (forward,
//                       where the CPU has AVX-512) or OpenBLAS sgemm (attention_fast.cpp).
//   CpuReferenceBackend the same memory and GEMM, attention by plain loops in fp64
//                       (attention_reference.cpp); slow, for checking.
#pragma once
#include "device/backend.h"

namespace rw::device {

namespace cpu {
// The forward kernels of the fast backend:
//   fused_avx512  packed K^T / V panels shared by all query blocks and heads of a step, scores
//                 and P V by AVX-512 register tiles (attention_fwd_fused.cpp); needs AVX-512F
//                 and head_dim % 16 == 0
//   fused_portable  the same fused kernel with plain C++ tiles (fused_tiles.h): any CPU,
//                 head_dim % 16 == 0; slower, for checking the fused kernel everywhere
//   blas          OpenBLAS sgemm on strided tiles (attention_fast.cpp); any CPU, any head_dim
//   automatic     fused_avx512 where it can run, else blas; the environment variable
//                 RINGWORLD_ATTN_FWD_KERNEL=blas (or fused, fused-portable, auto) overrides it
enum class FwdKernel { automatic, fused_avx512, fused_portable, blas };
}  // namespace cpu

class CpuBackend : public Backend {
 public:
  CpuBackend();
  // Forward kernel choice for tests and benchmarks (default: cpu::FwdKernel::automatic).
  explicit CpuBackend(cpu::FwdKernel fwd_kernel);
  std::string name() const override { return "cpu"; }
  bool host_accessible_memory() const override { return true; }

  void* allocate(std::size_t n_bytes) override;
  void release(void* pointer) override;
  void copy_to_device(void* dst, const void* src, std::size_t n_bytes) override;
  void copy_to_host(void* dst, const void* src, std::size_t n_bytes) override;
  void copy_device_to_device(void* dst, const void* src, std::size_t n_bytes) override;
  void synchronize(const ProgressHook& hook) override { hook(); }

  void gemm(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha, const float* a,
            int lda, const float* b, int ldb, float beta, float* c, int ldc) override;
  void fill(float* x, std::size_t n, float value) override;
  void add_inplace(float* y, const float* x, std::size_t n) override;

  void attn_row_dot(const AttnShape& shape, const float* out, const float* dout,
                    float* delta) override;
  void attn_merge(const AttnShape& shape, float* out_a, float* lse_a, const float* out_b,
                  const float* lse_b) override;
  void attn_fwd_step(const AttnFwdStepArgs& args, const ProgressHook& hook) override;
  void attn_bwd_step(const AttnBwdStepArgs& args, const ProgressHook& hook) override;

 private:
  cpu::FwdKernel fwd_kernel_;
};

class CpuReferenceBackend : public CpuBackend {
 public:
  std::string name() const override { return "cpu-reference"; }
  void attn_row_dot(const AttnShape& shape, const float* out, const float* dout,
                    float* delta) override;
  void attn_merge(const AttnShape& shape, float* out_a, float* lse_a, const float* out_b,
                  const float* lse_b) override;
  void attn_fwd_step(const AttnFwdStepArgs& args, const ProgressHook& hook) override;
  void attn_bwd_step(const AttnBwdStepArgs& args, const ProgressHook& hook) override;
};

namespace cpu {
// The kernel a forward step with this head_dim runs (never automatic); fatal when `requested`
// cannot run here or the environment variable holds an unknown name.
FwdKernel resolve_fwd_kernel(FwdKernel requested, int head_dim);
const char* fwd_kernel_name(FwdKernel kernel);
bool fused_fwd_kernel_available(int head_dim);  // AVX-512F CPU and head_dim % 16 == 0

// The fast kernels (attention_fast.cpp), callable without a backend object.
void attn_fwd_step_fast(const AttnFwdStepArgs& args, const ProgressHook& hook,
                        FwdKernel kernel = FwdKernel::automatic);
void attn_fwd_step_blas(const AttnFwdStepArgs& args, const ProgressHook& hook);
struct FusedTiles;
void attn_fwd_step_fused(const AttnFwdStepArgs& args, const ProgressHook& hook, const FusedTiles& tiles);
void attn_bwd_step_fast(const AttnBwdStepArgs& args, const ProgressHook& hook);
void attn_row_dot_fast(const AttnShape& shape, const float* out, const float* dout, float* delta);
void attn_merge_fast(const AttnShape& shape, float* out_a, float* lse_a, const float* out_b,
                     const float* lse_b);
// Validates a step's arguments (shapes, divisibility, pointers); fatal on violation.
void check_attn_shape(const AttnShape& shape, const AttnTiling& tiling);
}  // namespace cpu

}  // namespace rw::device
