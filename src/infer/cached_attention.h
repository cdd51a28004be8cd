// cached_attention.h: the model's AttentionOp for generation (generator.h drives it).
//   Prefill: the prompt goes through the training ring attention (RingAttentionOp, any layout);
//     each layer's local K (RoPE applied) and V, and the tokens' positions and segment ids, are
//     copied into this rank's KvCache: each rank keeps the keys and values of its own tokens in
//     place, as its shard of the cache.
//   Decode (one token, the same on every rank): the rank chosen to hold the token appends its
//     K/V to its shard; every rank attends the token's query over its own shard (the attention
//     tile kernel, one query row), and the partial results merge exactly by their log-sum-exp
//     (partial_merge.h): one all-gather per layer of heads x (head_dim + 1) floats per rank,
//     whatever the context length. The cache never moves.
// Precision: q, k, v and the cache in f32, or all in bf16 (AttentionShape::dtype, the cache's
// dtype: `generate --precision bf16`); out, lse, the softmax statistics and the merged partials
// are fp32 either way, so the log-sum-exp merge across ranks is the same as in f32.
// Work goes on the context's compute stream (device/exec_context.h); the decode merge reads the
// partial to the host (a synchronous copy: the sync point of each layer's decode) and writes the
// merged result back. Inference only: backward() is an internal error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "device/exec_context.h"
#include "src/attention/attention_ops.h"
#include "src/infer/kv_cache.h"
#include "src/model/model_interfaces.h"

namespace rw::infer {

// all(world * count floats, rank-major) = every rank's `mine` (count floats); collective.
using AllGatherFloats = std::function<void(const float* mine, std::size_t count, float* all)>;

struct CachedAttentionStats {
  int64_t merges = 0;              // decode all-gathers (one per layer per token)
  std::size_t merge_bytes_sent = 0;  // this rank's payload, (ring_size - 1) x its block per merge
  double local_attention_s = 0;    // decode: the local shard's attention (enqueue to partial on host)
  double merge_s = 0;              // decode: all-gather and merge
};

class CachedAttentionOp : public model::AttentionOp<float> {
 public:
  CachedAttentionOp(device::ExecContext exec, RingAttentionOp& ring, int ring_size, AllGatherFloats allgather);

  // The cache the next calls fill and read (kept by the caller; one per sequence).
  void set_cache(KvCache* cache) { cache_ = cache; }
  // f32 or bf16 q/k/v (the prefill's ring and the decode kernel take both).
  bool takes(device::DType dtype) const override {
    return dtype == device::DType::f32 || dtype == device::DType::bf16;
  }

  // The next forward calls (one per layer) are the prefill of the cache's rows [0, n_local).
  void start_prefill();
  // The next forward calls are one decode step; `keep`: this rank holds the token (its K/V
  // become row cache.size(), and the cache grows by one row after the step's last layer).
  void start_decode(bool keep);

  void forward(int layer, const model::AttentionShape& shape, const float* q, const float* k, const float* v,
               const int32_t* pos, const int32_t* seg, float* out, float* lse) override;
  void backward(int layer, const model::AttentionShape& shape, const float* q, const float* k, const float* v,
                const int32_t* pos, const int32_t* seg, const float* out, const float* dout, const float* lse,
                float* dq, float* dk, float* dv) override;

  const CachedAttentionStats& stats() const { return stats_; }

 private:
  enum class Mode { idle, prefill, decode };
  void prefill_layer(int layer, const model::AttentionShape& shape, const float* q, const float* k, const float* v,
                     const int32_t* pos, const int32_t* seg, float* out, float* lse);
  void decode_layer(int layer, const model::AttentionShape& shape, const float* q, const float* k, const float* v,
                    const int32_t* pos, const int32_t* seg, float* out, float* lse);

  device::ExecContext exec_;
  RingAttentionOp& ring_;
  KvCache* cache_ = nullptr;
  int ring_size_;
  AllGatherFloats allgather_;
  Mode mode_ = Mode::idle;
  bool keep_ = false;
  std::vector<float> mine_, all_, merged_out_, merged_lse_;  // host staging of the decode merge
  CachedAttentionStats stats_;
};

}  // namespace rw::infer
