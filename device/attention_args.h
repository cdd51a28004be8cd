// attention_args.h: arguments of the attention tile kernels, shared by every backend.
//
// Tensor layouts (all row-major, fp32 unless noted; pointers are device pointers):
//   q, out, dout, dq : [batch, n_q, heads,    head_dim]
//   k, v, dk, dv     : [batch, n_k, kv_heads, head_dim]
//   lse, delta       : [batch, heads, n_q]
//   q_pos, q_seg     : int32 [batch, n_q];  k_pos, k_seg : int32 [batch, n_k]
// Query head h reads key/value head h / (heads / kv_heads) (grouped-query attention).
//
// One call covers one ring step: all local queries against one shard of keys.
// Forward merges the step's partial (O, lse) into the running (out, lse) in place; a row that
// has seen no visible key keeps lse = -inf and out = 0. Backward accumulates into dq, dk, dv.
#pragma once
#include <cstdint>

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

// Called by a backend, from the submitting thread, while a long kernel runs (CPU) or while it
// waits for one (GPU), so communication posted before the kernel keeps moving.
struct ProgressHook {
  void (*fn)(void* context) = nullptr;
  void* context = nullptr;
  void operator()() const {
    if (fn) fn(context);
  }
};

}  // namespace rw::device
