// attention_builder.cpp: see attention_builder.h.
#include "device/attention_builder.h"

#include "device/backend.h"

namespace rw::device {

AttnProblem make_attn_problem(const Backend& backend, const AttnShape& shape, bool causal, DType dtype) {
  AttnProblem p;
  p.shape = shape;
  p.causal = causal;
  p.tiling = backend.attn_tiling(shape);
  p.dtype = dtype;
  return p;
}

namespace {
template <class Args>
void fill_common(Args& a, const AttnProblem& p, const AttnQueries& queries, const AttnKeys& keys) {
  a.shape = p.shape;
  a.mask.q_pos = queries.pos;
  a.mask.q_seg = queries.seg;
  a.mask.causal = p.causal;
  a.tiling = p.tiling;
  a.scale = attn_softmax_scale(p.shape.head_dim);
  a.dtype = p.dtype;
  a.q = queries.q;
  set_attn_keys(a, keys);
}
}  // namespace

void set_attn_keys(AttnFwdStepArgs& a, const AttnKeys& keys) {
  a.k = keys.k;
  a.v = keys.v;
  a.mask.k_pos = keys.pos;
  a.mask.k_seg = keys.seg;
}

void set_attn_keys(AttnBwdStepArgs& a, const AttnKeys& keys) {
  a.k = keys.k;
  a.v = keys.v;
  a.mask.k_pos = keys.pos;
  a.mask.k_seg = keys.seg;
}

AttnFwdStepArgs make_attn_fwd_args(const AttnProblem& problem, const AttnQueries& queries, const AttnKeys& keys,
                                   float* out, float* lse) {
  AttnFwdStepArgs a;
  fill_common(a, problem, queries, keys);
  a.out = out;
  a.lse = lse;
  return a;
}

AttnBwdStepArgs make_attn_bwd_args(const AttnProblem& problem, const AttnQueries& queries, const AttnKeys& keys,
                                   const float* dout, const float* lse, const float* delta, float* dq, float* dk,
                                   float* dv) {
  AttnBwdStepArgs a;
  fill_common(a, problem, queries, keys);
  a.dout = dout;
  a.lse = lse;
  a.delta = delta;
  a.dq = dq;
  a.dk = dk;
  a.dv = dv;
  return a;
}

}  // namespace rw::device
