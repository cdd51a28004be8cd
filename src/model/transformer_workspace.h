// transformer_workspace.h: the device memory of Transformer (transformer.h): persistent
// buffers sized from the batch shape, allocated at the first call and reused by every layer and
// step (never per layer per step: a GPU's free synchronises the device). They grow only when a
// call needs more than any before: the first validation (forward only, on a batch that may be
// larger than a training micro-batch: it grows the residual stream and the scratch region by its
// forward layout, never the training-only buffers); allocations() counts the allocations so
// tests can assert the steady state allocates nothing.
//
// Buffers, N tokens of the call, H hidden, KV kv width, I intermediate, V vocab, c FFN chunk
// rows, cl loss chunk rows, L layers:
//   inputs    tokens, targets, positions, segment ids (i32) and loss weights (f32), N each, and
//             their pinned staging buffer (one copy up per call)
//   resid     [N, H]: the residual stream x in the forward; x2 (the FFN input) in the backward
//   dx        [N, H]: the gradient of the residual stream (training)
//   saved     per layer: input x_in [N, H], attention output [N, H], lse [heads, N] (training)
//   grad      the largest parameter unit: one unit's gradient at a time (training)
//   scratch   one region carved anew per phase (the phases never overlap in time):
//               layer phases: n1 [N, H], inv1 [N], q [N, H], k, v [N, KV] (qkv), then one of
//                 forward-only attention output [N, H] and lse [heads, N];
//                 FFN chunk forward  n2 [c, H], inv2 [c], g, u, a [c, I];
//                 FFN chunk backward the same and dg, du [c, I], dn2 [c, H] (da reuses a,
//                 dnorm reuses n2: each is written after the other's last read);
//                 attention backward dout [N, H] (later dn1), dq [N, H] (later dnorm1), dk, dv [N, KV]
//               head phase (qkv dead): nf [cl, H], inv [cl], logits [cl, V] and, training,
//                 dlogits [cl, V], dnf [cl, H]
//   loss      one f64 (DeviceScalar), token_losses [N] f64 when forward() is asked for them
// Every carved buffer starts on a 256-byte boundary.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "device/backend.h"
#include "device/device_scalar.h"
#include "src/model/llama_config.h"

namespace rw::model {

struct QkvBuffers {
  float *n1, *inv1, *q, *k, *v;
};
struct AttnOutBuffers {  // forward-only attention output
  float *out, *lse;
};
struct FfnBuffers {  // forward: n2 .. a; backward: all
  float *n2, *inv2, *g, *u, *a, *da, *dg, *du, *dn2, *dnorm;
};
struct AttnGradBuffers {
  float *dout, *dq, *dk, *dv;
};
struct HeadBuffers {
  float *nf, *inv, *logits, *dlogits, *dnf;
};
struct SavedLayer {
  float *x_in, *attn_out, *lse;
};
// The batch's inputs on the device.
struct DeviceBatch {
  const int32_t *tokens, *targets, *positions, *segment_ids;
  const float* loss_weights;
};

class TransformerWorkspace {
 public:
  TransformerWorkspace(device::Backend& backend, const LlamaConfig& config, int64_t ffn_chunk_tokens,
                       int64_t loss_chunk_tokens);

  // Room for a call on n tokens; training adds dx, the saved tensors and the gradient buffer;
  // token_losses the per-token loss buffer.
  void reserve(int64_t n, bool training, bool token_losses);

  // Copies the batch's inputs up through the pinned staging buffer (enqueued on stream; the
  // staging buffer is rewritten only after the previous copy's event).
  DeviceBatch upload(const int32_t* tokens, const int32_t* targets, const int32_t* positions,
                     const int32_t* segment_ids, const float* loss_weights, int64_t n, device::Stream& stream);

  float* resid() { return resid_.data(); }
  float* dx() { return dx_.data(); }
  float* grad() { return grad_.data(); }
  double* token_losses() { return token_losses_.data(); }
  device::DeviceScalar& loss() { return *loss_; }
  QkvBuffers qkv(int64_t n);
  AttnOutBuffers attn_out(int64_t n);
  // The FFN chunk and head buffers of a call on n tokens; training: the backward's layout
  // (reserve(n, true) made room for it).
  FfnBuffers ffn(int64_t n, bool training);
  AttnGradBuffers attn_grads(int64_t n);
  HeadBuffers head(int64_t n, bool training);
  SavedLayer saved(int layer, int64_t n);

  int64_t allocations() const { return allocations_; }
  std::size_t bytes() const;

 private:
  template <class T>
  void grow(device::DeviceArray<T>& array, std::size_t count, device::MemoryKind kind = device::MemoryKind::device);
  int64_t layer_scratch_floats(int64_t n, bool training) const;
  int64_t head_floats(int64_t n, bool training) const;
  int64_t saved_stride(int64_t n) const;

  device::Backend& backend_;
  int64_t hidden_, kv_, inter_, vocab_, heads_, layers_, ffn_chunk_, loss_chunk_, max_unit_;
  device::DeviceArray<int32_t> inputs_, staging_;  // staging: pinned host
  std::unique_ptr<device::Event> staged_;
  device::DeviceArray<float> resid_, dx_, saved_, grad_, scratch_;
  device::DeviceArray<double> token_losses_;
  std::unique_ptr<device::DeviceScalar> loss_;
  int64_t allocations_ = 0;
};

}  // namespace rw::model
