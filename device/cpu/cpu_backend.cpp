// cpu_backend.cpp: memory, GEMM and elementwise ops of the CPU backends, and the dispatch of
// their attention kernels.
#include "device/cpu/cpu_backend.h"

#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "device/cpu/attention_reference.h"
#include "src/common/fatal.h"

namespace rw::device {

CpuBackend::CpuBackend() : CpuBackend(cpu::FwdKernel::automatic) {}
CpuBackend::CpuBackend(cpu::FwdKernel fwd_kernel) : fwd_kernel_(fwd_kernel) {}

void* CpuBackend::allocate(std::size_t n_bytes) {
  std::size_t rounded = ((n_bytes + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  RW_CHECK(p != nullptr, "out of host memory allocating " + std::to_string(n_bytes) + " bytes");
  return p;
}

void CpuBackend::release(void* pointer) { std::free(pointer); }

void CpuBackend::copy_to_device(void* dst, const void* src, std::size_t n_bytes) {
  if (n_bytes) std::memcpy(dst, src, n_bytes);
}
void CpuBackend::copy_to_host(void* dst, const void* src, std::size_t n_bytes) {
  if (n_bytes) std::memcpy(dst, src, n_bytes);
}
void CpuBackend::copy_device_to_device(void* dst, const void* src, std::size_t n_bytes) {
  if (n_bytes) std::memmove(dst, src, n_bytes);
}

void CpuBackend::gemm(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha,
                      const float* a, int lda, const float* b, int ldb, float beta, float* c,
                      int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a == Transpose::yes ? CblasTrans : CblasNoTrans,
              trans_b == Transpose::yes ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
              beta, c, ldc);
}

void CpuBackend::fill(float* x, std::size_t n, float value) {
#pragma omp parallel for schedule(static)
  for (std::size_t i = 0; i < n; ++i) x[i] = value;
}

void CpuBackend::add_inplace(float* y, const float* x, std::size_t n) {
#pragma omp parallel for schedule(static)
  for (std::size_t i = 0; i < n; ++i) y[i] += x[i];
}

void CpuBackend::attn_row_dot(const AttnShape& shape, const float* out, const float* dout,
                              float* delta) {
  cpu::attn_row_dot_fast(shape, out, dout, delta);
}
void CpuBackend::attn_merge(const AttnShape& shape, float* out_a, float* lse_a, const float* out_b,
                            const float* lse_b) {
  cpu::attn_merge_fast(shape, out_a, lse_a, out_b, lse_b);
}
void CpuBackend::attn_fwd_step(const AttnFwdStepArgs& args, const ProgressHook& hook) {
  cpu::attn_fwd_step_fast(args, hook, fwd_kernel_);
}
void CpuBackend::attn_bwd_step(const AttnBwdStepArgs& args, const ProgressHook& hook) {
  cpu::attn_bwd_step_fast(args, hook);
}

// ---- reference backend ----

void CpuReferenceBackend::attn_row_dot(const AttnShape& shape, const float* out, const float* dout,
                                       float* delta) {
  reference::attn_row_dot<float, double>(shape, out, dout, delta);
}
void CpuReferenceBackend::attn_merge(const AttnShape& shape, float* out_a, float* lse_a,
                                     const float* out_b, const float* lse_b) {
  reference::attn_merge<float, double>(shape, out_a, lse_a, out_b, lse_b);
}
void CpuReferenceBackend::attn_fwd_step(const AttnFwdStepArgs& a, const ProgressHook& hook) {
  cpu::check_attn_shape(a.shape, a.tiling);
  reference::attn_fwd_step<float, double>(a.shape, a.mask, a.scale, a.q, a.k, a.v, a.out, a.lse);
  hook();
}
void CpuReferenceBackend::attn_bwd_step(const AttnBwdStepArgs& a, const ProgressHook& hook) {
  cpu::check_attn_shape(a.shape, a.tiling);
  reference::attn_bwd_step<float, double>(a.shape, a.mask, a.scale, a.q, a.k, a.v, a.dout, a.lse,
                                          a.delta, a.dq, a.dk, a.dv);
  hook();
}

}  // namespace rw::device
