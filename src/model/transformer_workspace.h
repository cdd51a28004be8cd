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
//   weights   bf16 mode, when the parameter source gathers fp32: the largest parameter unit in
//             bf16, the working copy of the unit being computed (a convert kernel rounds it)
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
// Every carved buffer starts on a 256-byte boundary. In bf16 mode (transformer.h) the buffers
// that feed a GEMM or the attention kernels are bf16 (n1, q, k, v, n2, g, u, a, da, dg, du, dout,
// nf, dlogits: the void* fields below); the ones that accumulate or feed fp32 statistics stay
// fp32 (resid, dx, saved, grad, inv*, attention output and lse, dn2, dn1, dq, dk, dv, logits,
// dnf). n2 and dout are carved at fp32 size, since fp32 dnorm and dn1 reuse them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "device/backend.h"
#include "device/device_scalar.h"
#include "src/model/llama_config.h"

namespace rw::model {

// A device operand of a kernel: pointer and storage (f32, or bf16 in bf16 mode). A float*
// converts to an f32 operand; a working buffer (void*) names its dtype.
struct Operand {
  const void* p = nullptr;
  device::DType dtype = device::DType::f32;
  Operand(const float* f) : p(f) {}  // NOLINT: implicit on purpose (fp32 buffers)
  Operand(const void* q, device::DType t) : p(q), dtype(t) {}
  Operand at(int64_t elements) const {
    return {static_cast<const char*>(p) + elements * static_cast<int64_t>(device::dtype_size(dtype)), dtype};
  }
  device::ConstTensorView view(std::initializer_list<int64_t> shape) const {
    return device::make_view<const void*>(p, dtype, shape);
  }
  device::ConstTensorView matrix(int64_t rows, int64_t cols, int64_t ld) const {
    device::ConstTensorView v = view({rows, cols});
    v.stride[0] = ld;
    return v;
  }
};
// A written operand (as Operand).
struct Output {
  void* p = nullptr;
  device::DType dtype = device::DType::f32;
  Output(float* f) : p(f) {}  // NOLINT: implicit on purpose (fp32 buffers)
  Output(void* q, device::DType t) : p(q), dtype(t) {}
  device::TensorView view(std::initializer_list<int64_t> shape) const {
    return device::make_view<void*>(p, dtype, shape);
  }
  device::TensorView matrix(int64_t rows, int64_t cols, int64_t ld) const {
    device::TensorView v = view({rows, cols});
    v.stride[0] = ld;
    return v;
  }
};

// Buffers typed void* hold the working precision (transformer.h: f32, or bf16 in bf16 mode);
// float* ones are fp32 in both. A void* buffer another one aliases is carved at fp32 size.
struct QkvBuffers {
  void* n1;
  float* inv1;
  void *q, *k, *v;
};
struct AttnOutBuffers {  // forward-only attention output
  float *out, *lse;
};
struct FfnBuffers {  // forward: n2 .. a; backward: all
  void* n2;
  float* inv2;
  void *g, *u, *a, *da, *dg, *du;
  float *dn2, *dnorm;
};
struct AttnGradBuffers {
  void* dout;
  float *dn1, *dq, *dnorm1, *dk, *dv;  // dn1 reuses dout, dnorm1 dq (transformer.cpp)
};
struct HeadBuffers {
  void* nf;
  float *inv, *logits;
  void* dlogits;
  float* dnf;
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
  // working: the storage of the working buffers (void* above); weight_copy: keep the bf16 copy
  // of the unit in use (bf16, when the parameter source does not gather bf16 itself).
  TransformerWorkspace(device::Backend& backend, const LlamaConfig& config, int64_t ffn_chunk_tokens,
                       int64_t loss_chunk_tokens, device::DType working = device::DType::f32,
                       bool weight_copy = false);

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
  // bf16 mode: the working copy of the unit in use, as large as the largest unit (allocated at
  // the first reserve); nullptr in fp32 mode.
  device::bf16_t* weights_bf16() { return weights_bf16_.size() ? weights_bf16_.data() : nullptr; }
  device::DType working() const { return working_; }
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
  device::DType working_;
  bool weight_copy_;
  int64_t hidden_, kv_, inter_, vocab_, heads_, layers_, ffn_chunk_, loss_chunk_, max_unit_;
  device::DeviceArray<int32_t> inputs_, staging_;  // staging: pinned host
  std::unique_ptr<device::Event> staged_;
  device::DeviceArray<float> resid_, dx_, saved_, grad_, scratch_;
  device::DeviceArray<double> token_losses_;
  device::DeviceArray<device::bf16_t> weights_bf16_;
  std::unique_ptr<device::DeviceScalar> loss_;
  int64_t allocations_ = 0;
};

}  // namespace rw::model
