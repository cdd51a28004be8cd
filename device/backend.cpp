// backend.cpp: the public (non-virtual) methods of Backend: argument checks shared by every
// backend, then the backend's *_impl / submit; and the compatibility calls.
#include "device/backend.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "device/kernel_checks.h"
#include "src/common/fatal.h"
#include "src/common/timer.h"

namespace rw::device {

const char* memory_kind_name(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::device: return "device";
    case MemoryKind::pinned_host: return "pinned_host";
    case MemoryKind::host: return "host";
  }
  return "?";
}

void Backend::check_owner(const Stream& stream, const char* what) const {
  RW_CHECK(&stream.owner() == this, std::string(what) + ": the stream belongs to another backend (" +
                                        stream.owner().name() + "), not to this " + name() + " backend");
}
void Backend::check_owner(const Event& event, const char* what) const {
  RW_CHECK(&event.owner() == this, std::string(what) + ": the event belongs to another backend (" +
                                       event.owner().name() + "), not to this " + name() + " backend");
}

// ---- streams and events ----

std::unique_ptr<Stream> Backend::create_stream() { return create_stream_impl(); }
Stream& Backend::default_stream() { return default_stream_impl(); }
std::unique_ptr<Event> Backend::create_event() { return create_event_impl(); }

void Backend::record(Event& event, Stream& stream) {
  check_owner(event, "record");
  check_owner(stream, "record");
  record_impl(event, stream);
}
void Backend::wait(Stream& stream, Event& event) {
  check_owner(event, "wait");
  check_owner(stream, "wait");
  wait_impl(stream, event);
}
bool Backend::query(Event& event) {
  check_owner(event, "query");
  return query_impl(event);
}
void Backend::host_wait(Event& event, const ProgressHook& hook) {
  check_owner(event, "host_wait");
  host_wait_impl(event, hook);
}
void Backend::synchronize(Stream& stream, const ProgressHook& hook) {
  check_owner(stream, "synchronize");
  synchronize_impl(stream, hook);
}
void Backend::synchronize(const ProgressHook& hook) { synchronize_all_impl(hook); }

// ---- memory ----

void* Backend::allocate(std::size_t n_bytes, MemoryKind kind) {
  void* p = allocate_impl(n_bytes, kind);
  RW_CHECK(p != nullptr, name() + ": out of " + memory_kind_name(kind) + " memory allocating " +
                             std::to_string(n_bytes) + " bytes");
  return p;
}
void Backend::release(void* pointer) {
  if (pointer) release_impl(pointer);
}
void Backend::copy_async(void* dst, const void* src, std::size_t n_bytes, Stream& stream) {
  check_owner(stream, "copy_async");
  if (n_bytes == 0) return;
  RW_CHECK(dst != nullptr && src != nullptr, "copy_async: null pointer");
  copy_async_impl(dst, src, n_bytes, stream);
}
void Backend::copy_to_device(void* dst, const void* src, std::size_t n_bytes) {
  if (n_bytes == 0) return;
  RW_CHECK(dst != nullptr && src != nullptr, "copy_to_device: null pointer");
  synchronize_all_impl({});
  copy_sync_impl(dst, src, n_bytes, CopyDirection::host_to_device);
}
void Backend::copy_to_host(void* dst, const void* src, std::size_t n_bytes) {
  if (n_bytes == 0) return;
  RW_CHECK(dst != nullptr && src != nullptr, "copy_to_host: null pointer");
  synchronize_all_impl({});
  copy_sync_impl(dst, src, n_bytes, CopyDirection::device_to_host);
}
void Backend::copy_device_to_device(void* dst, const void* src, std::size_t n_bytes) {
  if (n_bytes == 0) return;
  RW_CHECK(dst != nullptr && src != nullptr, "copy_device_to_device: null pointer");
  synchronize_all_impl({});
  copy_sync_impl(dst, src, n_bytes, CopyDirection::device_to_device);
}

// ---- what the tools report ----

double Backend::measure_gemm_gflops(int n, int repeats, int threads) {
  (void)threads;  // a device's GEMMs use the whole device
  RW_CHECK(n > 0 && repeats > 0, "measure_gemm_gflops: n and repeats must be positive");
  const std::size_t count = static_cast<std::size_t>(n) * n;
  DeviceArray<float> a(*this, count), b(*this, count), c(*this, count);
  Stream& s = default_stream();
  FillArgs f;
  f.value = 0.5;
  f.x = a.view({n, n});
  fill(f, s);
  f.value = 0.25;
  f.x = b.view({n, n});
  fill(f, s);
  GemmArgs g;
  g.a = a.view({n, n});
  g.b = b.view({n, n});
  g.c = c.view({n, n});
  synchronize(s);
  double best = 1e30;
  for (int r = 0; r <= repeats; ++r) {
    const double t0 = wall_seconds();
    gemm(g, s);
    synchronize(s);
    if (r > 0) best = std::min(best, wall_seconds() - t0);  // r == 0 is the warm-up
  }
  return 2.0 * n * double(n) * n / best / 1e9;
}

// ---- kernels ----

void Backend::launch(KernelCall call, Stream& stream, const ProgressHook& hook) {
  check_owner(stream, kernel_name(call));
  check_kernel_call(call);
  submit(call, hook, stream);
}

void Backend::gemm(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                   const float* b, int ldb, float beta, float* c, int ldc) {
  GemmArgs g;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.alpha = alpha;
  g.beta = beta;
  g.a = trans_a == Transpose::no ? matrix_view(a, m, k, lda) : matrix_view(a, k, m, lda);
  g.b = trans_b == Transpose::no ? matrix_view(b, k, n, ldb) : matrix_view(b, n, k, ldb);
  g.c = matrix_view(c, m, n, ldc);
  launch(g, default_stream());
}

void Backend::fill(float* x, std::size_t n, float value) {
  FillArgs f;
  f.x = view(x, {static_cast<int64_t>(n)});
  f.value = value;
  launch(f, default_stream());
}

void Backend::add_inplace(float* y, const float* x, std::size_t n) {
  AddArgs a;
  a.x = view(x, {static_cast<int64_t>(n)});
  a.y = view(y, {static_cast<int64_t>(n)});
  launch(a, default_stream());
}

void Backend::attn_row_dot(const AttnShape& shape, const float* out, const float* dout, float* delta) {
  launch(AttnRowDotArgs{shape, out, dout, delta}, default_stream());
}

void Backend::attn_merge(const AttnShape& shape, float* out_a, float* lse_a, const float* out_b,
                         const float* lse_b) {
  launch(AttnMergeArgs{shape, out_a, lse_a, out_b, lse_b}, default_stream());
}

void Backend::attn_fwd_step(const AttnFwdStepArgs& args, const ProgressHook& hook) {
  launch(args, default_stream(), hook);
}
void Backend::attn_bwd_step(const AttnBwdStepArgs& args, const ProgressHook& hook) {
  launch(args, default_stream(), hook);
}

}  // namespace rw::device
