// model_interfaces.h: what the models need from the rest of the system, as interfaces, so the
// device model (transformer.h) runs in fp32 on the ring with FSDP-sharded weights (training)
// and the reference model (reference_transformer.h) in fp64 on one process with whole weights
// (the tests' oracle). For the device model every pointer crossing these interfaces is a device
// pointer of its ExecContext's backend and every call follows device/exec_context.h's
// contract: work enqueued so that compute-stream work enqueued after the call sees its results;
// inputs read asynchronously only in compute-stream order. For the reference model they are
// host pointers and the calls are synchronous.
#pragma once
#include <cstdint>

#include "device/dtype.h"

namespace rw::model {

// Full weights of a parameter unit (llama_config.h) for the time they are used, and the sink of
// that unit's gradients. Every rank calls these in the same order (they may be collective).
template <class T>
class ParamSource {
 public:
  virtual ~ParamSource() = default;
  // The unit's full weights, valid until release(unit) (compute-stream work enqueued after the
  // call may read them).
  virtual const T* gather(int unit) = 0;
  // A hint: `unit` is gathered next (the model calls it for the next unit before computing the
  // current one), so its all-gather may start now, overlapped with this unit's compute. Called
  // on every rank in the same order, with valid units only. Default: nothing.
  virtual void prefetch(int unit) {}
  virtual void release(int unit) = 0;
  // A source that keeps a bf16 working copy of the weights (FsdpParams with a bf16 gather:
  // refreshed after each update, all-gathered in bf16, half the bytes) says so here; a model in
  // bf16 precision then calls gather_bf16 instead of gather (prefetch fetches the bf16 copy).
  // Otherwise the model rounds gather()'s fp32 unit itself.
  virtual bool gathers_bf16() const { return false; }
  // The unit's weights rounded to bf16 (nearest even), same layout and contract as gather.
  virtual const device::bf16_t* gather_bf16(int unit) {
    (void)unit;
    return nullptr;
  }
  // Adds this rank's contribution to the unit's gradient (full unit shape) to its owner(s). The
  // buffer is read in compute-stream order: the caller may overwrite it with compute-stream work
  // enqueued after the call.
  virtual void reduce_grad(int unit, const T* grad) = 0;
};

// Attention over this rank's tokens, all local sequences at once. Shapes as in
// device/attention_args.h with n_q = n_k = n_local: q/out/dout [batch, n_local, heads, head_dim],
// k/v [batch, n_local, kv_heads, head_dim], lse [batch, heads, n_local]; pos/seg [batch, n_local].
// dtype: the storage of q, k, v and dout (device/attention_args.h): f32, or bf16 for the device
// model's bf16 precision (transformer.h), when the T* pointers hold bf16 data; out, lse, dq, dk
// and dv are fp32 either way (accumulators). The reference model takes f32 only.
struct AttentionShape {
  int batch = 0, n_local = 0, heads = 0, kv_heads = 0, head_dim = 0;
  device::DType dtype = device::DType::f32;
};

template <class T>
class AttentionOp {
 public:
  virtual ~AttentionOp() = default;
  // Whether q, k, v and dout may come in `dtype` (AttentionShape::dtype): the device model
  // refuses a precision its attention does not take. Default: f32 only.
  virtual bool takes(device::DType dtype) const { return dtype == device::DType::f32; }
  virtual void forward(int layer, const AttentionShape& shape, const T* q, const T* k, const T* v,
                       const int32_t* pos, const int32_t* seg, T* out, T* lse) = 0;
  virtual void backward(int layer, const AttentionShape& shape, const T* q, const T* k, const T* v,
                        const int32_t* pos, const int32_t* seg, const T* out, const T* dout, const T* lse,
                        T* dq, T* dk, T* dv) = 0;
};

// Row-major C = alpha op(A) op(B) + beta C (the reference model's GEMM; host pointers).
template <class T>
class MatMul {
 public:
  virtual ~MatMul() = default;
  virtual void operator()(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) = 0;
};

}  // namespace rw::model
