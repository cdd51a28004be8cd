// cpu_backend.h: the CPU backends. Memory is host memory (MPI reads it directly); kernels run
// at submission on the calling thread (cpu_kernels.h), so synchronize() only calls the hook.
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

// The cpu backends' streams and events are tokens: work runs at submission, so every event is
// complete when recorded and a synchronize only calls the hook.
class CpuBackend : public Backend {
 public:
  CpuBackend();
  // Forward kernel choice for tests and benchmarks (default: cpu::FwdKernel::automatic).
  explicit CpuBackend(cpu::FwdKernel fwd_kernel);
  ~CpuBackend() override;
  std::string name() const override { return "cpu"; }
  const Capabilities& capabilities() const override { return capabilities_; }
  // OpenBLAS sgemm with `threads` (0: OpenBLAS's own count, the dense GEMMs'; sgemm_peak.h).
  double measure_gemm_gflops(int n, int repeats, int threads) override;
  std::string resources_line() const override;         // OpenBLAS and OpenMP threads per rank
  std::string configuration_warning() const override;  // the two thread counts differ

 protected:
  CpuBackend(cpu::FwdKernel fwd_kernel, bool reference_attention);

  std::unique_ptr<Stream> create_stream_impl() override;
  Stream& default_stream_impl() override { return *default_stream_; }
  std::unique_ptr<Event> create_event_impl() override;
  void record_impl(Event&, Stream&) override {}
  void wait_impl(Stream&, Event&) override {}
  bool query_impl(Event&) override { return true; }
  void host_wait_impl(Event&, const ProgressHook& hook) override { hook(); }
  void synchronize_impl(Stream&, const ProgressHook& hook) override { hook(); }
  void synchronize_all_impl(const ProgressHook& hook) override { hook(); }
  void* allocate_impl(std::size_t n_bytes, MemoryKind kind) override;
  void release_impl(void* pointer) override;
  void copy_async_impl(void* dst, const void* src, std::size_t n_bytes, Stream& stream) override;
  void copy_sync_impl(void* dst, const void* src, std::size_t n_bytes, CopyDirection direction) override;
  void submit(KernelCall& call, const ProgressHook& hook, Stream& stream) override;

 private:
  Capabilities capabilities_;
  cpu::FwdKernel fwd_kernel_;
  bool reference_attention_;
  std::unique_ptr<Stream> default_stream_;
};

// The same memory, GEMM and model kernels; attention by plain loops in fp64.
class CpuReferenceBackend : public CpuBackend {
 public:
  CpuReferenceBackend();
  std::string name() const override { return "cpu-reference"; }
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
