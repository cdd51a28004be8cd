// cpu_backend.h: the CPU backends. Memory is host memory (MPI reads it directly); kernels run
// at submission, so synchronize() only calls the hook once.
//   CpuBackend          fast kernels: OpenBLAS sgemm on tiles, OpenMP across (batch, head,
//                       block) tasks, vectorised online softmax (attention_fast.cpp).
//   CpuReferenceBackend the same memory and GEMM, attention by plain loops in fp64
//                       (attention_reference.cpp); slow, for checking.
#pragma once
#include "device/backend.h"

namespace rw::device {

class CpuBackend : public Backend {
 public:
  CpuBackend();
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
// The fast kernels (attention_fast.cpp), callable without a backend object.
void attn_fwd_step_fast(const AttnFwdStepArgs& args, const ProgressHook& hook);
void attn_bwd_step_fast(const AttnBwdStepArgs& args, const ProgressHook& hook);
void attn_row_dot_fast(const AttnShape& shape, const float* out, const float* dout, float* delta);
void attn_merge_fast(const AttnShape& shape, float* out_a, float* lse_a, const float* out_b,
                     const float* lse_b);
// Validates a step's arguments (shapes, divisibility, pointers); fatal on violation.
void check_attn_shape(const AttnShape& shape, const AttnTiling& tiling);
}  // namespace cpu

}  // namespace rw::device
