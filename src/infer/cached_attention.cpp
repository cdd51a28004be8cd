// cached_attention.cpp: see cached_attention.h.
#include "src/infer/cached_attention.h"

#include <limits>
#include <string>

#include "device/attention_builder.h"
#include "src/common/fatal.h"
#include "src/common/timer.h"
#include "src/infer/partial_merge.h"

namespace rw::infer {

CachedAttentionOp::CachedAttentionOp(device::ExecContext exec, RingAttentionOp& ring, int ring_size,
                                     AllGatherFloats allgather)
    : exec_(exec), ring_(ring), ring_size_(ring_size), allgather_(std::move(allgather)) {
  RW_CHECK(exec_.backend && exec_.compute && ring_size_ >= 1 && allgather_, "cached attention: bad arguments");
}

void CachedAttentionOp::start_prefill() { mode_ = Mode::prefill; }

void CachedAttentionOp::start_decode(bool keep) {
  mode_ = Mode::decode;
  keep_ = keep;
}

void CachedAttentionOp::forward(int layer, const model::AttentionShape& shape, const float* q, const float* k,
                                const float* v, const int32_t* pos, const int32_t* seg, float* out, float* lse) {
  RW_CHECK(cache_ != nullptr, "cached attention: no cache set");
  KvCache& cache = *cache_;
  RW_CHECK(layer >= 0 && layer < cache.layers(), "cached attention: layer " + std::to_string(layer) +
                                                     " outside the cache's " + std::to_string(cache.layers()));
  RW_CHECK(shape.batch == 1 && static_cast<int64_t>(shape.kv_heads) * shape.head_dim == cache.row_floats(),
           "cached attention: one sequence with the cache's K/V width");
  RW_CHECK(shape.dtype == cache.dtype(), std::string("cached attention: q/k/v in ") + device::dtype_name(shape.dtype) +
                                             " but the KV cache holds " + device::dtype_name(cache.dtype()));
  if (mode_ == Mode::prefill) return prefill_layer(layer, shape, q, k, v, pos, seg, out, lse);
  RW_CHECK(mode_ == Mode::decode, "cached attention: forward before start_prefill/start_decode");
  decode_layer(layer, shape, q, k, v, pos, seg, out, lse);
}

void CachedAttentionOp::backward(int, const model::AttentionShape&, const float*, const float*, const float*,
                                 const int32_t*, const int32_t*, const float*, const float*, const float*, float*,
                                 float*, float*) {
  RW_FAIL("cached attention is for generation: it has no backward");
}

void CachedAttentionOp::prefill_layer(int layer, const model::AttentionShape& shape, const float* q, const float* k,
                                      const float* v, const int32_t* pos, const int32_t* seg, float* out,
                                      float* lse) {
  KvCache& cache = *cache_;
  const int64_t n = shape.n_local;
  RW_CHECK(n <= cache.capacity(), "cached attention: the prefill's " + std::to_string(n) +
                                       " local tokens exceed the cache's capacity");
  ring_.forward(layer, shape, q, k, v, pos, seg, out, lse);
  // In compute-stream order: the next layer's projections (enqueued later) overwrite k and v.
  device::Backend& be = *exec_.backend;
  const std::size_t bytes = static_cast<std::size_t>(n) * cache.row_bytes();  // k, v in the cache's dtype
  be.copy_async(cache.k(layer), k, bytes, *exec_.compute);
  be.copy_async(cache.v(layer), v, bytes, *exec_.compute);
  if (layer == 0) {
    be.copy_async(cache.pos(), pos, static_cast<std::size_t>(n) * sizeof(int32_t), *exec_.compute);
    be.copy_async(cache.seg(), seg, static_cast<std::size_t>(n) * sizeof(int32_t), *exec_.compute);
    cache.set_size(n);
  }
}

void CachedAttentionOp::decode_layer(int layer, const model::AttentionShape& shape, const float* q, const float* k,
                                     const float* v, const int32_t* pos, const int32_t* seg, float* out,
                                     float* lse) {
  RW_CHECK(shape.n_local == 1, "cached attention: a decode step is one token");
  KvCache& cache = *cache_;
  device::Backend& be = *exec_.backend;
  device::Stream& s = *exec_.compute;
  const double t0 = wall_seconds();
  const int64_t row = cache.size();
  const int64_t rows = row + (keep_ ? 1 : 0);
  if (keep_) {
    RW_CHECK(rows <= cache.capacity(), "cached attention: the KV cache's capacity of " +
                                            std::to_string(cache.capacity()) + " tokens is full");
    be.copy_async(cache.k_row(layer, row), k, cache.row_bytes(), s);
    be.copy_async(cache.v_row(layer, row), v, cache.row_bytes(), s);
    if (layer == 0) {
      be.copy_async(cache.pos() + row, pos, sizeof(int32_t), s);
      be.copy_async(cache.seg() + row, seg, sizeof(int32_t), s);
    }
  }
  const int heads = shape.heads, hd = shape.head_dim;
  const int64_t out_floats = static_cast<int64_t>(heads) * hd;
  device::FillArgs zero;
  zero.x = device::view(out, {out_floats});
  zero.value = 0.0;
  be.fill(zero, s);
  device::FillArgs none;
  none.x = device::view(lse, {static_cast<int64_t>(heads)});
  none.value = -std::numeric_limits<double>::infinity();
  be.fill(none, s);
  if (rows > 0) {
    const device::AttnShape as{1, 1, static_cast<int>(rows), heads, shape.kv_heads, hd};
    const device::AttnProblem problem = device::make_attn_problem(be, as, true, cache.dtype());
    const device::AttnFwdStepArgs args = device::make_attn_fwd_args(
        problem, device::AttnQueries{q, pos, seg},
        device::AttnKeys{cache.k(layer), cache.v(layer), cache.pos(), cache.seg()}, out, lse);
    be.attn_fwd_step(args, device::ProgressHook{}, s);
  }
  const int64_t block = partial_block_floats(heads, hd);
  mine_.resize(static_cast<std::size_t>(block));
  all_.resize(static_cast<std::size_t>(block * ring_size_));
  merged_out_.resize(static_cast<std::size_t>(out_floats));
  merged_lse_.resize(static_cast<std::size_t>(heads));
  be.copy_to_host(mine_.data(), out, static_cast<std::size_t>(out_floats) * sizeof(float));
  be.copy_to_host(mine_.data() + out_floats, lse, static_cast<std::size_t>(heads) * sizeof(float));
  const double t1 = wall_seconds();
  allgather_(mine_.data(), static_cast<std::size_t>(block), all_.data());
  merge_partials(all_.data(), ring_size_, heads, hd, merged_out_.data(), merged_lse_.data());
  be.copy_to_device(out, merged_out_.data(), static_cast<std::size_t>(out_floats) * sizeof(float));
  be.copy_to_device(lse, merged_lse_.data(), static_cast<std::size_t>(heads) * sizeof(float));
  stats_.local_attention_s += t1 - t0;
  stats_.merge_s += wall_seconds() - t1;
  ++stats_.merges;
  stats_.merge_bytes_sent += static_cast<std::size_t>(block) * sizeof(float) * static_cast<std::size_t>(ring_size_ - 1);
  if (layer == cache.layers() - 1 && keep_) cache.set_size(rows);
}

}  // namespace rw::infer
