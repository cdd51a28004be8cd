// attention_args.h: arguments of the attention tile kernels, shared by every backend.
//
// Tensor layouts (all row-major; pointers are device pointers):
//   q, out, dout, dq : [batch, n_q, heads,    head_dim]
//   k, v, dk, dv     : [batch, n_k, kv_heads, head_dim]
//   lse, delta       : [batch, heads, n_q]
//   q_pos, q_seg     : int32 [batch, n_q];  k_pos, k_seg : int32 [batch, n_k]
// Query head h reads key/value head h / (heads / kv_heads) (grouped-query attention).
//
// One call covers one ring step: all local queries against one shard of keys.
// Forward merges the step's partial (O, lse) into the running (out, lse) in place; a row that
// has seen no visible key keeps lse = -inf and out = 0. Backward accumulates into dq, dk, dv.
//
// Element types: q, k, v (and dout in the backward) are stored in `dtype`: f32, or bf16 (the
// pointer fields then point at bf16_t data; arithmetic stays fp32). out, lse, delta, dq, dk,
// dv are fp32 accumulators always (the running output, and dK/dV travelling round the ring).
// The pointer fields keep their float types so today's CPU kernels read them unchanged; a GPU
// backend reads q/k/v/dout through reinterpret_cast when dtype is bf16 (flash-attention's
// params struct does the same with void pointers and an is_bf16 flag).
//
// Fill these structs with make_attn_fwd_args / make_attn_bwd_args (attention_builder.h), the
// one place that knows every field.
#pragma once
#include <cstdint>

#include "device/dtype.h"
#include "device/progress_hook.h"

namespace rw::device {

struct AttnShape {
  int batch = 0;
  int n_q = 0;       // query tokens in this call
  int n_k = 0;       // key tokens in this call
  int heads = 0;     // query heads
  int kv_heads = 0;  // key/value heads (heads % kv_heads == 0)
  int head_dim = 0;
};

struct AttnMaskArgs {
  const int32_t* q_pos = nullptr;
  const int32_t* q_seg = nullptr;
  const int32_t* k_pos = nullptr;
  const int32_t* k_seg = nullptr;
  bool causal = false;
};

struct AttnTiling {
  int block_q = 256;  // query rows per tile (256 x 256 measured best of 64-512 on AVX-512, d 64)
  int block_k = 256;  // key rows per tile
};

struct AttnFwdStepArgs {
  AttnShape shape;
  AttnMaskArgs mask;
  AttnTiling tiling;
  float scale = 0.f;  // softmax scale, normally 1/sqrt(head_dim)
  DType dtype = DType::f32;  // storage of q, k, v: f32 or bf16
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;  // running normalised output, merged in place
  float* lse = nullptr;  // running log-sum-exp, merged in place (-inf: no key seen yet)
};

struct AttnBwdStepArgs {
  AttnShape shape;
  AttnMaskArgs mask;
  AttnTiling tiling;
  float scale = 0.f;
  DType dtype = DType::f32;  // storage of q, k, v, dout: f32 or bf16
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* dout = nullptr;
  const float* lse = nullptr;    // final forward lse
  const float* delta = nullptr;  // rowsum(dout * out), from Backend::attn_row_dot
  float* dq = nullptr;           // accumulated (+=)
  float* dk = nullptr;           // accumulated (+=)
  float* dv = nullptr;           // accumulated (+=)
};

// delta[b, h, i] = sum_d out[b, i, h, d] * dout[b, i, h, d]   (fp32; shape uses n_q)
struct AttnRowDotArgs {
  AttnShape shape;
  const float* out = nullptr;
  const float* dout = nullptr;
  float* delta = nullptr;
};

// Merges a partial (out_b, lse_b) over a disjoint key set into (out_a, lse_a), in place (fp32).
struct AttnMergeArgs {
  AttnShape shape;
  float* out_a = nullptr;
  float* lse_a = nullptr;
  const float* out_b = nullptr;
  const float* lse_b = nullptr;
};

}  // namespace rw::device
