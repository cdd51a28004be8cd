// backend.h: the device contract everything above device/ calls. One implementation per device
// kind: cpu and cpu-reference (device/cpu), sim-gpu (device/sim); cuda/hip follow. Backends
// are created through the registry (registry.h). device/README.md describes the contract for
// whoever writes the next backend.
//
// Asynchrony (stream.h has the stream and event semantics):
//   - every kernel and async copy is enqueued on a stream, given as its last argument, and may
//     return before the work is done (capabilities().async_execution says whether it does);
//   - results may be read only after an event or a synchronize says the work has finished;
//   - the progress hook is called from the submitting thread only: by kernels that run on it
//     (cpu), or while the host waits (synchronize, host_wait), so MPI keeps moving.
// Memory: allocate(n_bytes, kind) / release. Device memory is touched only by kernels and
// copies unless capabilities().host_accessible_device_memory. release() of memory that pending
// work still uses waits for that work first (as cudaFree does), so it is never a race; steady
// state code keeps persistent workspaces and does not allocate per step.
//
// The public methods are non-virtual: they check their arguments once for every backend
// (kernel_checks.cpp: shapes, dtypes, stream ownership; a violation is fatal and names the
// kernel and the argument) and dispatch to the protected virtual *_impl / submit members that
// a backend implements.
//
// Compatibility (the calls made before streams existed): gemm(Transpose, ...), fill(float*,
// ...), add_inplace, attn_* without a stream, synchronize(hook) and the synchronous copies
// still work; they use the default stream, and synchronize(hook) waits for every stream.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "device/attention_args.h"
#include "device/kernel_args.h"
#include "device/kernel_call.h"
#include "device/stream.h"

namespace rw::device {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual const Capabilities& capabilities() const = 0;
  bool host_accessible_memory() const { return capabilities().host_accessible_device_memory; }
  // Attention tile sizes for a problem of this shape (a hint; default: the capabilities').
  virtual AttnTiling attn_tiling(const AttnShape& shape) const { return capabilities().attn_tiling; }

  // ---- what the tools report about the backend (MFU, run headers) ----
  // The fp32 GEMM rate MFU and benchmark ratios are measured against, in GFLOP/s, measured now:
  // C = A B on n x n device matrices, the best of `repeats` timed runs after one warm-up.
  // threads > 0 asks a CPU backend for that many threads (the planner's --threads); 0 means
  // what this backend's GEMMs run with. The default times this backend's own gemm kernel on
  // its default stream (any backend); cpu measures OpenBLAS directly.
  virtual double measure_gemm_gflops(int n = 1024, int repeats = 5, int threads = 0);
  // How the backend computes, for run headers (cpu: its OpenBLAS and OpenMP thread counts).
  virtual std::string resources_line() const { return name() + " backend"; }
  // A warning about how the process is set up for this backend, or "" (cpu: the dense GEMMs
  // and the OpenMP kernels run on different thread counts).
  virtual std::string configuration_warning() const { return ""; }

  // ---- streams and events (stream.h) ----
  std::unique_ptr<Stream> create_stream();
  Stream& default_stream();
  std::unique_ptr<Event> create_event();
  void record(Event& event, Stream& stream);
  void wait(Stream& stream, Event& event);
  bool query(Event& event);
  void host_wait(Event& event, const ProgressHook& hook = {});
  void synchronize(Stream& stream, const ProgressHook& hook = {});
  // Waits for the work of every stream of this backend (calls hook at least once).
  void synchronize(const ProgressHook& hook = {});

  // ---- memory ----
  void* allocate(std::size_t n_bytes, MemoryKind kind = MemoryKind::device);
  void release(void* pointer);
  // Stream-ordered copy between any two of device / pinned host memory (host memory on
  // backends whose memory is host memory). The host side must stay valid and untouched until
  // the copy has finished (an event or synchronize says so).
  void copy_async(void* dst, const void* src, std::size_t n_bytes, Stream& stream);
  // Synchronous copies: wait for every stream's work, copy, return (cudaMemcpy's semantics);
  // the host side may be any host memory.
  void copy_to_device(void* dst, const void* src, std::size_t n_bytes);
  void copy_to_host(void* dst, const void* src, std::size_t n_bytes);
  void copy_device_to_device(void* dst, const void* src, std::size_t n_bytes);

  // ---- kernels (kernel_args.h, attention_args.h); stream last ----
  void launch(KernelCall call, Stream& stream, const ProgressHook& hook = {});
  void gemm(const GemmArgs& a, Stream& s) { launch(a, s); }
  void fill(const FillArgs& a, Stream& s) { launch(a, s); }
  void add(const AddArgs& a, Stream& s) { launch(a, s); }
  void axpy(const AxpyArgs& a, Stream& s) { launch(a, s); }
  void scale(const ScaleArgs& a, Stream& s) { launch(a, s); }
  void convert(const ConvertArgs& a, Stream& s) { launch(a, s); }
  void rmsnorm_fwd(const RmsNormFwdArgs& a, Stream& s) { launch(a, s); }
  void rmsnorm_bwd(const RmsNormBwdArgs& a, Stream& s) { launch(a, s); }
  void rope_fwd(const RopeFwdArgs& a, Stream& s) { launch(a, s); }
  void rope_bwd(const RopeBwdArgs& a, Stream& s) { launch(a, s); }
  void swiglu_fwd(const SwigluFwdArgs& a, Stream& s) { launch(a, s); }
  void swiglu_bwd(const SwigluBwdArgs& a, Stream& s) { launch(a, s); }
  void embedding_fwd(const EmbeddingFwdArgs& a, Stream& s) { launch(a, s); }
  void embedding_bwd(const EmbeddingBwdArgs& a, Stream& s) { launch(a, s); }
  void cross_entropy(const CrossEntropyArgs& a, Stream& s) { launch(a, s); }
  void adamw(const AdamWArgs& a, Stream& s) { launch(a, s); }
  void sum_squares(const SumSquaresArgs& a, Stream& s) { launch(a, s); }
  void sum(const SumArgs& a, Stream& s) { launch(a, s); }
  void argmax(const ArgmaxArgs& a, Stream& s) { launch(a, s); }
  void attn_fwd_step(const AttnFwdStepArgs& a, const ProgressHook& hook, Stream& s) { launch(a, s, hook); }
  void attn_bwd_step(const AttnBwdStepArgs& a, const ProgressHook& hook, Stream& s) { launch(a, s, hook); }
  void attn_row_dot(const AttnRowDotArgs& a, Stream& s) { launch(a, s); }
  void attn_merge(const AttnMergeArgs& a, Stream& s) { launch(a, s); }
  // VQGAN kernels (vision_args.h; forward only; where capabilities().vqgan_kernels)
  void conv2d(const Conv2dArgs& a, Stream& s) { launch(a, s); }
  void group_norm(const GroupNormArgs& a, Stream& s) { launch(a, s); }
  void silu(const SiluArgs& a, Stream& s) { launch(a, s); }
  void upsample_nearest2x(const UpsampleNearest2xArgs& a, Stream& s) { launch(a, s); }
  void vq_nearest(const VqNearestArgs& a, Stream& s) { launch(a, s); }
  void vq_lookup(const VqLookupArgs& a, Stream& s) { launch(a, s); }

  // ---- compatibility: fp32 on the default stream ----
  // C = alpha op(A) op(B) + beta C, row-major.
  void gemm(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha, const float* a, int lda,
            const float* b, int ldb, float beta, float* c, int ldc);
  void fill(float* x, std::size_t n, float value);
  void add_inplace(float* y, const float* x, std::size_t n);  // y += x
  // delta[b, h, i] = sum_d out[b, i, h, d] * dout[b, i, h, d]   (shape uses n_q)
  void attn_row_dot(const AttnShape& shape, const float* out, const float* dout, float* delta);
  // Merges partial (out_b, lse_b) over a disjoint key set into (out_a, lse_a), in place.
  void attn_merge(const AttnShape& shape, float* out_a, float* lse_a, const float* out_b, const float* lse_b);
  void attn_fwd_step(const AttnFwdStepArgs& args, const ProgressHook& hook);
  void attn_bwd_step(const AttnBwdStepArgs& args, const ProgressHook& hook);

 protected:
  enum class CopyDirection { host_to_device, device_to_host, device_to_device };

  virtual std::unique_ptr<Stream> create_stream_impl() = 0;
  virtual Stream& default_stream_impl() = 0;
  virtual std::unique_ptr<Event> create_event_impl() = 0;
  virtual void record_impl(Event& event, Stream& stream) = 0;
  virtual void wait_impl(Stream& stream, Event& event) = 0;
  virtual bool query_impl(Event& event) = 0;
  virtual void host_wait_impl(Event& event, const ProgressHook& hook) = 0;
  virtual void synchronize_impl(Stream& stream, const ProgressHook& hook) = 0;
  virtual void synchronize_all_impl(const ProgressHook& hook) = 0;
  virtual void* allocate_impl(std::size_t n_bytes, MemoryKind kind) = 0;
  virtual void release_impl(void* pointer) = 0;
  virtual void copy_async_impl(void* dst, const void* src, std::size_t n_bytes, Stream& stream) = 0;
  // Called after every stream's work has finished; copies before returning.
  virtual void copy_sync_impl(void* dst, const void* src, std::size_t n_bytes, CopyDirection direction) = 0;
  // Runs or enqueues one kernel whose arguments passed the checks; may rewrite `call`.
  virtual void submit(KernelCall& call, const ProgressHook& hook, Stream& stream) = 0;

 private:
  void check_owner(const Stream& stream, const char* what) const;
  void check_owner(const Event& event, const char* what) const;
};

// Owning device array of T, released through its backend.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(Backend& backend, std::size_t count, MemoryKind kind = MemoryKind::device)
      : backend_(&backend), count_(count), data_(static_cast<T*>(backend.allocate(count * sizeof(T), kind))) {}
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& other) noexcept { swap(other); }
  DeviceArray& operator=(DeviceArray&& other) noexcept {
    DeviceArray(std::move(other)).swap(*this);
    return *this;
  }
  ~DeviceArray() {
    if (data_) backend_->release(data_);
  }
  void swap(DeviceArray& other) noexcept {
    std::swap(backend_, other.backend_);
    std::swap(count_, other.count_);
    std::swap(data_, other.data_);
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return count_; }
  std::size_t n_bytes() const { return count_ * sizeof(T); }
  // Synchronous (see Backend::copy_to_device).
  void upload(const T* host) { backend_->copy_to_device(data_, host, n_bytes()); }
  void download(T* host) const { backend_->copy_to_host(host, data_, n_bytes()); }
  // A contiguous view of the whole array with this shape (element count must match: checked
  // by the kernel that receives it).
  TensorView view(std::initializer_list<int64_t> shape) { return device::view(data_, shape); }
  ConstTensorView view(std::initializer_list<int64_t> shape) const {
    return device::view(static_cast<const T*>(data_), shape);
  }

 private:
  Backend* backend_ = nullptr;
  std::size_t count_ = 0;
  T* data_ = nullptr;
};

// ---- registry (the table lives in registry.cpp) ----

struct BackendInfo {
  const char* name;
  const char* description;
  std::unique_ptr<Backend> (*create)();
  // Whether this machine can run it (a GPU present, a driver loaded); cpu backends: always.
  bool (*available)();
  // Whether the tools (train, forward, attn, eval, bench) accept it: a backend whose memory the
  // host cannot touch is offered to them once everything they run keeps to device memory
  // (device/README.md, phase B: the model, trainer and optimizer do; the ring's transfers and
  // FSDP's shards are the other half).
  bool tools;
  // Why available() is false here, in one line (null: no reason to give).
  std::string (*unavailable_reason)() = nullptr;
};

// Every registered backend, available here or not.
const std::vector<BackendInfo>& backend_registry();
// The entry of that name, or null.
const BackendInfo* find_backend(const std::string& name);
// Creates a backend the tools accept; InputError (naming the known ones) when the name is
// unknown, the backend is not available here, or the tools do not take it yet.
std::unique_ptr<Backend> make_backend(const std::string& name);
// The names make_backend accepts (available here and accepted by the tools).
std::vector<std::string> backend_names();
// Every registered backend available here (tests run all of them).
std::vector<std::string> available_backend_names();
// Creates any available registered backend (tests); InputError when unknown or unavailable.
std::unique_ptr<Backend> create_backend(const std::string& name);

// Called first thing in main(), before MPI_Init: lets the backends prepare the process (cpu:
// makes OpenBLAS use kernels that fit this CPU, which may re-execute the program with the same
// arguments). Returns only when the process goes on as it is.
void prepare_process(int argc, char** argv);

}  // namespace rw::device
