// gpu_backend.cu: see gpu_backend.h. Written once in CUDA runtime names; vendor.h maps them to
// HIP for the HIP build.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "device/cuda/gpu_backend.h"
#include "device/gpu_device_choice.h"
#include "device/cuda/gpu_kernels.h"
#include "device/cuda/simt.h"
#include "src/common/input_error.h"

namespace rw::device::gpu::RW_GPU_NS {
namespace {

#if defined(RW_GPU_CUDA)
constexpr const char* kBackendName = "cuda";
#else
constexpr const char* kBackendName = "hip";
#endif

long env_long(const char* name, long fallback, long min_value, long max_value) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < min_value || value > max_value)
    throw InputError(std::string("environment variable ") + name + "='" + text + "': expected an integer in [" +
                     std::to_string(min_value) + ", " + std::to_string(max_value) + "]");
  return value;
}

// Per-stream scratch (launch_context.h). Growing waits for the stream's pending work (which may
// use the old buffer): rare, during the first steps only.
class DeviceWorkspace final : public Workspace {
 public:
  explicit DeviceWorkspace(cudaStream_t stream) : stream_(stream) {}
  ~DeviceWorkspace() override {
    if (data_) RW_GPU_CHECK(cudaFree(data_));
  }
  void* get(std::size_t n_bytes) override {
    if (n_bytes <= capacity_ && data_) return data_;
    if (data_) {
      RW_GPU_CHECK(cudaStreamSynchronize(stream_));
      RW_GPU_CHECK(cudaFree(data_));
      data_ = nullptr;
    }
    const std::size_t capacity = std::max<std::size_t>(n_bytes + n_bytes / 4, std::size_t(1) << 20);
    RW_GPU_CHECK(cudaMalloc(&data_, capacity));
    capacity_ = capacity;
    return data_;
  }

 private:
  cudaStream_t stream_;
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

class GpuStream;

// The live streams of a backend (synchronize_all waits for each).
struct StreamSet {
  std::mutex mutex;
  std::set<GpuStream*> streams;
};

class GpuStream final : public Stream {
 public:
  GpuStream(const Backend& owner, StreamSet& set) : Stream(owner), set_(set) {
    RW_GPU_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    RW_GPU_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    workspace = std::make_unique<DeviceWorkspace>(stream);
    std::lock_guard<std::mutex> lock(set_.mutex);
    set_.streams.insert(this);
  }
  ~GpuStream() override {
    {
      std::lock_guard<std::mutex> lock(set_.mutex);
      set_.streams.erase(this);
    }
    RW_GPU_CHECK(cudaStreamSynchronize(stream));  // the contract: destroying a stream lets its work finish
    workspace.reset();
    RW_GPU_CHECK(cudaEventDestroy(done));
    RW_GPU_CHECK(cudaStreamDestroy(stream));
  }
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;  // recorded by synchronize()
  std::unique_ptr<DeviceWorkspace> workspace;

 private:
  StreamSet& set_;
};

class GpuEvent final : public Event {
 public:
  explicit GpuEvent(const Backend& owner) : Event(owner) {
    RW_GPU_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  }
  ~GpuEvent() override { RW_GPU_CHECK(cudaEventDestroy(event)); }
  cudaEvent_t event = nullptr;
};

// Polls until the event completes, calling the hook between polls (MPI progress); without a
// hook, blocks in the runtime.
void wait_event(cudaEvent_t event, const ProgressHook& hook) {
  for (;;) {
    hook();
    const cudaError_t status = cudaEventQuery(event);
    if (status == cudaSuccess) return;
    if (status != cudaErrorNotReady) RW_GPU_CHECK(status);
    if (!hook.fn) {
      RW_GPU_CHECK(cudaEventSynchronize(event));
      return;
    }
    std::this_thread::yield();
  }
}

std::string probe_devices() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess)
    return std::string(RW_GPU_API_PREFIX) + "GetDeviceCount: " + cudaGetErrorName(status) + " (" +
           cudaGetErrorString(status) + ")";
  if (count == 0) return std::string("no ") + RW_GPU_VENDOR_NAME + " device";
  return "";
}

const std::string& unavailable_reason() {
  static const std::string reason = probe_devices();
  return reason;
}

class GpuBackend final : public Backend {
 public:
  GpuBackend() {
    const std::string& why = unavailable_reason();
    RW_CHECK(why.empty(), std::string(kBackendName) + " backend: " + why);
    int count = 0;
    RW_GPU_CHECK(cudaGetDeviceCount(&count));
    const GpuDeviceChoice choice = choose_gpu_device(count);  // node-local rank % count (gpu_device_choice.h)
    device_ = choice.device;
    device_basis_ = choice.basis;
    RW_GPU_CHECK(cudaSetDevice(device_));
    tf32_ = env_long("RINGWORLD_GPU_TF32", 0, 0, 1) == 1;
    attn_fused_ = attn_fused_from_environment();
    attn_bwd_fused_ = attn_bwd_fused_from_environment();
#if RW_GPU_HAVE_BLAS
    cublasHandle_t handle = nullptr;
    RW_CHECK(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS,
             std::string(kBackendName) + ": cannot create a BLAS handle");
    blas_ = handle;
#endif
    capabilities_.async_execution = true;
    capabilities_.events = true;
    capabilities_.host_accessible_device_memory = false;
    capabilities_.gpu_aware_mpi_possible = true;
    capabilities_.pinned_host_memory = true;
    capabilities_.bf16_storage = true;
    capabilities_.bf16_native = RW_GPU_HAVE_BLAS != 0;  // bf16 GEMMs on matrix cores through the vendor BLAS
    capabilities_.kernels_call_progress_hook = false;
    capabilities_.allocation_alignment_bytes = 256;
    capabilities_.attn_tiling = AttnTiling{1024, 1024};  // the reference path's query / key chunks
    capabilities_.vqgan_kernels = true;  // kernels/vision.cu
    default_stream_ = create_stream_impl();
  }

  ~GpuBackend() override {
    synchronize_all_impl({});
    default_stream_.reset();
#if RW_GPU_HAVE_BLAS
    if (blas_) cublasDestroy(static_cast<cublasHandle_t>(blas_));
#endif
    for (auto& [pointer, kind] : allocations_) free_allocation(pointer, kind);
  }

  std::string name() const override { return kBackendName; }
  const Capabilities& capabilities() const override { return capabilities_; }
  // The GEMM rate is the contract's generic measurement (Backend::measure_gemm_gflops: this
  // backend's fp32 gemm kernel, cuBLAS or the own one, timed on the host around a synchronize).
  // The device, its size and the GEMM path, for run headers.
  std::string resources_line() const override {
    cudaDeviceProp prop{};
    RW_GPU_CHECK(cudaGetDeviceProperties(&prop, device_));
    int count = 0;
    RW_GPU_CHECK(cudaGetDeviceCount(&count));
#if defined(RW_GPU_HIP)
    const std::string arch = prop.gcnArchName;
#else
    const std::string arch = "sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
#endif
    const double gib = static_cast<double>(prop.totalGlobalMem) / double(1u << 30);
    char memory[32];
    std::snprintf(memory, sizeof memory, "%.1f GiB", gib);
    return std::string(kBackendName) + ": device " + std::to_string(device_) + " (" + device_basis_ + "), " +
           prop.name + " (" + arch + ", " + std::to_string(prop.multiProcessorCount) + " " +
           RW_GPU_COMPUTE_UNITS_NAME + ", " + memory + "); GEMMs by " +
           (RW_GPU_HAVE_BLAS ? std::string(RW_GPU_BLAS_NAME) + (tf32_ ? " (fp32 on TF32 tensor cores)" : "")
                             : std::string("the own tiled kernel")) +
           "; attention forward " + (attn_fused_ ? "fused for bf16" : "by the reference path") + ", backward " +
           (attn_bwd_fused_ ? "fused for bf16" : "by the reference path");
  }
  // TF32 GEMMs are outside the contract's fp32 tolerances: said in every run header.
  std::string configuration_warning() const override {
    if (tf32_ && RW_GPU_HAVE_BLAS)
      return "RINGWORLD_GPU_TF32=1: fp32 GEMMs run on TF32 tensor cores (10-bit mantissas), outside the fp32 "
             "tolerances the tests hold the kernels to";
    return "";
  }

 protected:
  std::unique_ptr<Stream> create_stream_impl() override { return std::make_unique<GpuStream>(*this, streams_); }
  Stream& default_stream_impl() override { return *default_stream_; }
  std::unique_ptr<Event> create_event_impl() override { return std::make_unique<GpuEvent>(*this); }
  void record_impl(Event& event, Stream& stream) override {
    RW_GPU_CHECK(cudaEventRecord(static_cast<GpuEvent&>(event).event, gpu_stream(stream)));
  }
  void wait_impl(Stream& stream, Event& event) override {
    RW_GPU_CHECK(cudaStreamWaitEvent(gpu_stream(stream), static_cast<GpuEvent&>(event).event, 0));
  }
  bool query_impl(Event& event) override {
    const cudaError_t status = cudaEventQuery(static_cast<GpuEvent&>(event).event);
    if (status == cudaErrorNotReady) return false;
    RW_GPU_CHECK(status);
    return true;
  }
  void host_wait_impl(Event& event, const ProgressHook& hook) override {
    wait_event(static_cast<GpuEvent&>(event).event, hook);
  }
  void synchronize_impl(Stream& stream, const ProgressHook& hook) override {
    auto& s = static_cast<GpuStream&>(stream);
    RW_GPU_CHECK(cudaEventRecord(s.done, s.stream));
    wait_event(s.done, hook);
  }
  void synchronize_all_impl(const ProgressHook& hook) override {
    std::vector<GpuStream*> streams;
    {
      std::lock_guard<std::mutex> lock(streams_.mutex);
      streams.assign(streams_.streams.begin(), streams_.streams.end());
    }
    for (GpuStream* s : streams) synchronize_impl(*s, hook);
    if (streams.empty()) hook();
  }

  void* allocate_impl(std::size_t n_bytes, MemoryKind kind) override {
    const std::size_t n = n_bytes == 0 ? 256 : n_bytes;
    void* p = nullptr;
    switch (kind) {
      case MemoryKind::device: RW_GPU_CHECK(cudaMalloc(&p, n)); break;
      case MemoryKind::pinned_host: RW_GPU_CHECK(cudaMallocHost(&p, n)); break;
      case MemoryKind::host: p = std::aligned_alloc(256, (n + 255) / 256 * 256); break;
    }
    if (p) allocations_[p] = kind;
    return p;
  }
  void release_impl(void* pointer) override {
    auto it = allocations_.find(pointer);
    RW_CHECK(it != allocations_.end(),
             std::string(kBackendName) + ": release of a pointer this backend did not allocate");
    free_allocation(it->first, it->second);
    allocations_.erase(it);
  }
  void copy_async_impl(void* dst, const void* src, std::size_t n_bytes, Stream& stream) override {
    RW_GPU_CHECK(cudaMemcpyAsync(dst, src, n_bytes, cudaMemcpyDefault, gpu_stream(stream)));
  }
  void copy_sync_impl(void* dst, const void* src, std::size_t n_bytes, CopyDirection) override {
    RW_GPU_CHECK(cudaMemcpy(dst, src, n_bytes, cudaMemcpyDefault));
  }
  void submit(KernelCall& call, const ProgressHook&, Stream& stream) override {
    auto& s = static_cast<GpuStream&>(stream);
    LaunchContext ctx;
    ctx.stream = s.stream;
    ctx.workspace = s.workspace.get();
    ctx.blas = blas_;
    ctx.tf32 = tf32_;
    ctx.attn_fused = attn_fused_;
    ctx.attn_bwd_fused = attn_bwd_fused_;
    run_kernel(call, ctx);
  }

 private:
  static cudaStream_t gpu_stream(Stream& stream) { return static_cast<GpuStream&>(stream).stream; }

  static void free_allocation(void* p, MemoryKind kind) {
    switch (kind) {
      case MemoryKind::device: RW_GPU_CHECK(cudaFree(p)); break;  // waits for the device's work
      case MemoryKind::pinned_host: RW_GPU_CHECK(cudaFreeHost(p)); break;
      case MemoryKind::host: std::free(p); break;
    }
  }

  int device_ = 0;
  std::string device_basis_;
  bool tf32_ = false;
  bool attn_fused_ = false;
  bool attn_bwd_fused_ = false;
  void* blas_ = nullptr;
  Capabilities capabilities_;
  StreamSet streams_;
  std::map<void*, MemoryKind> allocations_;
  std::unique_ptr<Stream> default_stream_;
};

}  // namespace
}  // namespace rw::device::gpu::RW_GPU_NS

namespace rw::device {

#if defined(RW_GPU_CUDA)
std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<gpu::RW_GPU_NS::GpuBackend>(); }
bool cuda_backend_available() { return gpu::RW_GPU_NS::unavailable_reason().empty(); }
std::string cuda_backend_unavailable_reason() { return gpu::RW_GPU_NS::unavailable_reason(); }
#else
std::unique_ptr<Backend> make_hip_backend() { return std::make_unique<gpu::RW_GPU_NS::GpuBackend>(); }
bool hip_backend_available() { return gpu::RW_GPU_NS::unavailable_reason().empty(); }
std::string hip_backend_unavailable_reason() { return gpu::RW_GPU_NS::unavailable_reason(); }
#endif

}  // namespace rw::device
