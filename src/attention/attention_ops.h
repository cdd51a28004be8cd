// attention_ops.h: the model's AttentionOp implementations.
//   RingAttentionOp       fp32 exact ring attention over the grid's sp ring (training).
//   ReferenceAttentionOp  the plain-loop reference on one process, in T (fp64 model tests).
// RingAttentionOp takes device pointers and orders its work as device/exec_context.h says.
#pragma once
#include <cmath>
#include <limits>
#include <vector>

#include "device/backend.h"
#include "device/cpu/attention_reference.h"
#include "src/attention/ring_attention.h"
#include "src/common/fatal.h"
#include "src/model/model_interfaces.h"

namespace rw {

class RingAttentionOp : public model::AttentionOp<float> {
 public:
  // One RingAttention kept for the run (its workspace is allocated once, then reused by every
  // layer and step); the work goes on `context`'s compute stream (device/exec_context.h).
  RingAttentionOp(device::ExecContext context, RingTransport& ring, RingOptions options)
      : attention_(context, ring, options) {}
  RingAttentionOp(device::Backend& backend, RingTransport& ring, RingOptions options)
      : attention_(backend, ring, options) {}
  bool takes(device::DType dtype) const override {  // K/V travel in it (RingShard::dtype)
    return dtype == device::DType::f32 || dtype == device::DType::bf16;
  }

  void forward(int layer, const model::AttentionShape& s, const float* q, const float* k, const float* v,
               const int32_t* pos, const int32_t* seg, float* out, float* lse) override {
    attention_.set_layer(layer);
    attention_.forward(shard(s, q, k, v, pos, seg), out, lse);
    accumulate(attention_.last_stats());
  }
  void backward(int layer, const model::AttentionShape& s, const float* q, const float* k, const float* v,
                const int32_t* pos, const int32_t* seg, const float* out, const float* dout, const float* lse,
                float* dq, float* dk, float* dv) override {
    attention_.set_layer(layer);
    attention_.backward(shard(s, q, k, v, pos, seg), out, dout, lse, dq, dk, dv);
    accumulate(attention_.last_stats());
  }

  // Totals since the last reset (for step logs).
  double compute_s = 0, wait_s = 0;
  std::size_t bytes_sent = 0;
  void reset_stats() { compute_s = wait_s = 0, bytes_sent = 0; }
  RingAttention& ring_attention() { return attention_; }

 private:
  static RingShard shard(const model::AttentionShape& s, const float* q, const float* k, const float* v,
                         const int32_t* pos, const int32_t* seg) {
    return RingShard{s.batch, s.n_local, s.heads, s.kv_heads, s.head_dim, q, k, v, pos, seg, s.dtype};
  }
  void accumulate(const std::vector<RingStepStats>& stats) {
    for (const auto& st : stats) {
      compute_s += st.compute_s;
      wait_s += st.wait_s;
      bytes_sent += st.bytes_sent;
    }
  }
  RingAttention attention_;
};

template <class T>
class ReferenceAttentionOp : public model::AttentionOp<T> {
 public:
  explicit ReferenceAttentionOp(bool causal) : causal_(causal) {}
  void forward(int, const model::AttentionShape& s, const T* q, const T* k, const T* v, const int32_t* pos,
               const int32_t* seg, T* out, T* lse) override {
    RW_CHECK(s.dtype == device::DType::f32, "the reference attention takes f32 q/k/v only");
    const device::AttnShape shape = to_shape(s);
    std::fill(out, out + static_cast<std::size_t>(s.batch) * s.n_local * s.heads * s.head_dim, T(0));
    std::fill(lse, lse + static_cast<std::size_t>(s.batch) * s.heads * s.n_local, -std::numeric_limits<T>::infinity());
    device::reference::attn_fwd_step<T, T>(shape, mask(pos, seg), T(1) / std::sqrt(T(s.head_dim)), q, k, v, out, lse);
  }
  void backward(int, const model::AttentionShape& s, const T* q, const T* k, const T* v, const int32_t* pos,
                const int32_t* seg, const T* out, const T* dout, const T* lse, T* dq, T* dk, T* dv) override {
    RW_CHECK(s.dtype == device::DType::f32, "the reference attention takes f32 q/k/v only");
    const device::AttnShape shape = to_shape(s);
    std::vector<T> delta(static_cast<std::size_t>(s.batch) * s.heads * s.n_local);
    device::reference::attn_row_dot<T, T>(shape, out, dout, delta.data());
    std::fill(dq, dq + static_cast<std::size_t>(s.batch) * s.n_local * s.heads * s.head_dim, T(0));
    std::fill(dk, dk + static_cast<std::size_t>(s.batch) * s.n_local * s.kv_heads * s.head_dim, T(0));
    std::fill(dv, dv + static_cast<std::size_t>(s.batch) * s.n_local * s.kv_heads * s.head_dim, T(0));
    device::reference::attn_bwd_step<T, T>(shape, mask(pos, seg), T(1) / std::sqrt(T(s.head_dim)), q, k, v, dout,
                                           lse, delta.data(), dq, dk, dv);
  }

 private:
  static device::AttnShape to_shape(const model::AttentionShape& s) {
    return {s.batch, s.n_local, s.n_local, s.heads, s.kv_heads, s.head_dim};
  }
  device::AttnMaskArgs mask(const int32_t* pos, const int32_t* seg) const {
    return {pos, seg, pos, seg, causal_};
  }
  bool causal_;
};

}  // namespace rw
