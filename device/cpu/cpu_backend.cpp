// cpu_backend.cpp: streams, events and memory of the CPU backends; kernels run at submission
// through cpu::run_kernel (cpu_kernels.h).
#include "device/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include <omp.h>

#include "device/cpu/cpu_kernels.h"
#include "device/cpu/sgemm_peak.h"
#include "src/common/fatal.h"

namespace rw::device {
namespace {

class CpuStream : public Stream {
 public:
  explicit CpuStream(const Backend& owner) : Stream(owner) {}
};

class CpuEvent : public Event {
 public:
  explicit CpuEvent(const Backend& owner) : Event(owner) {}
};

Capabilities cpu_capabilities() {
  Capabilities c;
  c.async_execution = false;
  c.events = true;
  c.host_accessible_device_memory = true;
  c.gpu_aware_mpi_possible = true;  // host memory: any MPI takes it
  c.pinned_host_memory = false;     // pinned_host is ordinary host memory here
  c.bf16_storage = true;            // by conversion (cpu_kernels.h)
  c.bf16_native = false;
  c.kernels_call_progress_hook = true;
  c.allocation_alignment_bytes = 64;
  c.attn_tiling = AttnTiling{};  // 256 x 256 (attention_args.h)
  c.vqgan_kernels = true;
  return c;
}

}  // namespace

CpuBackend::CpuBackend() : CpuBackend(cpu::FwdKernel::automatic, false) {}
CpuBackend::CpuBackend(cpu::FwdKernel fwd_kernel) : CpuBackend(fwd_kernel, false) {}
CpuBackend::CpuBackend(cpu::FwdKernel fwd_kernel, bool reference_attention)
    : capabilities_(cpu_capabilities()),
      fwd_kernel_(fwd_kernel),
      reference_attention_(reference_attention),
      default_stream_(std::make_unique<CpuStream>(*this)) {}
CpuBackend::~CpuBackend() = default;

CpuReferenceBackend::CpuReferenceBackend() : CpuBackend(cpu::FwdKernel::automatic, true) {}

std::unique_ptr<Stream> CpuBackend::create_stream_impl() { return std::make_unique<CpuStream>(*this); }
std::unique_ptr<Event> CpuBackend::create_event_impl() { return std::make_unique<CpuEvent>(*this); }

void* CpuBackend::allocate_impl(std::size_t n_bytes, MemoryKind) {
  std::size_t rounded = ((n_bytes + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  RW_CHECK(p != nullptr, "out of host memory allocating " + std::to_string(n_bytes) + " bytes");
  return p;
}

void CpuBackend::release_impl(void* pointer) { std::free(pointer); }

void CpuBackend::copy_async_impl(void* dst, const void* src, std::size_t n_bytes, Stream&) {
  std::memmove(dst, src, n_bytes);
}

void CpuBackend::copy_sync_impl(void* dst, const void* src, std::size_t n_bytes, CopyDirection) {
  std::memmove(dst, src, n_bytes);
}

double CpuBackend::measure_gemm_gflops(int n, int repeats, int threads) {
  return cpu::measure_sgemm_gflops(n, threads > 0 ? threads : cpu::blas_threads(), repeats);
}

std::string CpuBackend::resources_line() const { return cpu::thread_counts_line(omp_get_max_threads()); }

std::string CpuBackend::configuration_warning() const { return cpu::thread_mismatch_warning(omp_get_max_threads()); }

void CpuBackend::submit(KernelCall& call, const ProgressHook& hook, Stream&) {
  cpu::run_kernel(call, hook, cpu::KernelConfig{fwd_kernel_, reference_attention_});
}

}  // namespace rw::device
