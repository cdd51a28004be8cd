// backend.h: the device interface everything above device/ calls. One implementation per
// device (cpu now; cuda/hip follow). A backend owns memory, an ordered compute queue and the
// kernels: GEMM, the attention tile kernels and a few elementwise ops.
//
// Asynchrony contract (what lets the ring overlap transfers with compute):
//   - kernel calls are submitted in order and may return before the work is done;
//   - synchronize(hook) returns once all submitted work is done, calling hook repeatedly while
//     it waits; CPU kernels run at submission and call the hook themselves between tiles;
//   - pointers passed to kernels are device pointers from allocate(); when
//     host_accessible_memory() is true MPI may send and receive them directly.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "device/attention_args.h"

namespace rw::device {

enum class Transpose { no, yes };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual bool host_accessible_memory() const = 0;

  // ---- memory (allocation and copies are synchronous) ----
  virtual void* allocate(std::size_t n_bytes) = 0;
  virtual void release(void* pointer) = 0;
  virtual void copy_to_device(void* dst, const void* src, std::size_t n_bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, std::size_t n_bytes) = 0;
  virtual void copy_device_to_device(void* dst, const void* src, std::size_t n_bytes) = 0;

  // ---- ordering ----
  virtual void synchronize(const ProgressHook& hook = {}) = 0;

  // ---- dense algebra (row-major): C = alpha * op(A) op(B) + beta * C ----
  virtual void gemm(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha,
                    const float* a, int lda, const float* b, int ldb, float beta, float* c,
                    int ldc) = 0;

  // ---- elementwise ----
  virtual void fill(float* x, std::size_t n, float value) = 0;
  virtual void add_inplace(float* y, const float* x, std::size_t n) = 0;  // y += x

  // ---- attention ----
  // delta[b, h, i] = sum_d out[b, i, h, d] * dout[b, i, h, d]   (shape uses n_q)
  virtual void attn_row_dot(const AttnShape& shape, const float* out, const float* dout,
                            float* delta) = 0;
  // Merges partial (out_b, lse_b) over a disjoint key set into (out_a, lse_a), in place.
  virtual void attn_merge(const AttnShape& shape, float* out_a, float* lse_a, const float* out_b,
                          const float* lse_b) = 0;
  virtual void attn_fwd_step(const AttnFwdStepArgs& args, const ProgressHook& hook) = 0;
  virtual void attn_bwd_step(const AttnBwdStepArgs& args, const ProgressHook& hook) = 0;
};

// "cpu" (fast: OpenBLAS + OpenMP + SIMD) or "cpu-reference" (plain loops, fp64 arithmetic).
std::unique_ptr<Backend> make_backend(const std::string& name);
std::vector<std::string> backend_names();

// Owning device array of T, released through its backend.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(Backend& backend, std::size_t count)
      : backend_(&backend), count_(count),
        data_(static_cast<T*>(backend.allocate(count * sizeof(T)))) {}
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
  void upload(const T* host) { backend_->copy_to_device(data_, host, n_bytes()); }
  void download(T* host) const { backend_->copy_to_host(host, data_, n_bytes()); }

 private:
  Backend* backend_ = nullptr;
  std::size_t count_ = 0;
  T* data_ = nullptr;
};

}  // namespace rw::device
