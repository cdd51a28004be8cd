// attention_builder.h: the one place that fills the attention kernels' argument structs
// (flash-attention's set_params_fprop): callers say what the problem is and which tensors to
// use; a new field of AttnFwdStepArgs / AttnBwdStepArgs is set here once, not in every caller.
#pragma once
#include <cmath>
#include <cstdint>

#include "device/attention_args.h"

namespace rw::device {

class Backend;

// What stays fixed over the steps of one attention call.
struct AttnProblem {
  AttnShape shape;
  bool causal = false;
  AttnTiling tiling;          // from the backend's hint (make_attn_problem) unless set
  DType dtype = DType::f32;   // storage of q, k, v, dout
};

// The problem with the backend's tile sizes for this shape (Backend::attn_tiling).
AttnProblem make_attn_problem(const Backend& backend, const AttnShape& shape, bool causal,
                              DType dtype = DType::f32);

// The local queries and their positions / segment ids (device pointers).
struct AttnQueries {
  const float* q = nullptr;
  const int32_t* pos = nullptr;
  const int32_t* seg = nullptr;
};

// One shard of keys and values with their positions / segment ids (device pointers).
struct AttnKeys {
  const float* k = nullptr;
  const float* v = nullptr;
  const int32_t* pos = nullptr;
  const int32_t* seg = nullptr;
};

// The softmax scale every caller uses: 1 / sqrt(head_dim), in fp32.
inline float attn_softmax_scale(int head_dim) { return 1.f / std::sqrt(static_cast<float>(head_dim)); }

// Forward step: out / lse hold the running result (merged in place).
AttnFwdStepArgs make_attn_fwd_args(const AttnProblem& problem, const AttnQueries& queries, const AttnKeys& keys,
                                   float* out, float* lse);

// Backward step: lse the final forward lse, delta from attn_row_dot; dq, dk, dv accumulate.
AttnBwdStepArgs make_attn_bwd_args(const AttnProblem& problem, const AttnQueries& queries, const AttnKeys& keys,
                                   const float* dout, const float* lse, const float* delta, float* dq, float* dk,
                                   float* dv);

// Points a step at another shard of keys (the next ring step); the shape's n_k is unchanged.
void set_attn_keys(AttnFwdStepArgs& args, const AttnKeys& keys);
void set_attn_keys(AttnBwdStepArgs& args, const AttnKeys& keys);

}  // namespace rw::device
