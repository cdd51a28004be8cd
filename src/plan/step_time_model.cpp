// step_time_model.cpp: see step_time_model.h.
#include "src/plan/step_time_model.h"

#include <algorithm>
#include <vector>

namespace rw::plan {
namespace {

constexpr double kF32 = 4, kI32 = 4;

// Share of a full (n x n) block pair the slowest rank computes at a ring step after the first.
double step_pair_share(Layout layout) { return layout == Layout::contiguous ? 1.0 : 0.5; }

}  // namespace

double paper_forward_flops(const model::LlamaConfig& c, double sequences, double seq_len) {
  const double h = double(c.hidden_size);
  const double attention = 4.0 * sequences * seq_len * seq_len * h * 0.5;  // causal: half
  return (24.0 * sequences * seq_len * h * h + attention) * double(c.num_hidden_layers);
}

StepFlops step_flops(const TrainShape& s) {
  const model::LlamaConfig& m = s.model;
  const double h = double(m.hidden_size), kv = double(m.kv_width()), inter = double(m.intermediate_size),
               vocab = double(m.total_vocab_size()), layers = double(m.num_hidden_layers);
  const double n_tokens = double(s.local_tokens()), seq = double(s.seq_len);
  StepFlops f;
  f.model_flops = 3.0 * paper_forward_flops(m, double(s.dp) * double(s.sequences_per_group), seq);
  // Forward 4h^2 + 4h kv + 6hi per token and layer; backward (recompute included) 12h^2 +
  // 12h kv + 16hi (see transformer.cpp layer_backward); head 2 h vocab forward, 4 backward.
  f.dense_flops_per_rank =
      n_tokens * (layers * (16 * h * h + 16 * h * kv + 22 * h * inter) + 6 * h * vocab);
  const double pairs_per_rank = double(s.sequences_per_group) * seq * (seq + 1) / 2 / double(s.sp);
  f.attention_flops_per_rank = layers * (4 * h + 10 * h) * pairs_per_rank;
  return f;
}

StepTimePrediction predict_step_time(const TrainShape& s, double flops_per_s, double link_bytes_per_s,
                                     double fsdp_link_bytes_per_s) {
  const model::LlamaConfig& m = s.model;
  const double h = double(m.hidden_size), kv = double(m.kv_width()), layers = double(m.num_hidden_layers);
  const double b = double(s.sequences_per_group), n = double(s.local_tokens_per_sequence());
  const int sp = s.sp;
  StepTimePrediction p;
  p.flops = step_flops(s);
  p.flops_per_s = flops_per_s;
  p.link_bytes_per_s = link_bytes_per_s;
  p.fsdp_link_bytes_per_s = fsdp_link_bytes_per_s;
  p.dense_s = p.flops.dense_flops_per_rank / flops_per_s;

  // Bytes per token that travel: K, V (fp32, or bf16 with TrainShape::bf16) with pos, seg
  // (int32); the dK|dV accumulator (fp32).
  const double kv_bytes = 2 * kv * (s.bf16 ? 2 : kF32) + 2 * kI32, dkv_bytes = 2 * kv * kF32;
  const double share = step_pair_share(s.layout);
  // Step 0 is causal attention on the rank's own shard (n^2 / 2 pairs) in every layout.
  std::vector<double> pairs(sp);
  for (int t = 0; t < sp; ++t) pairs[t] = b * n * n * (t == 0 ? 0.5 : share);
  double fwd = 0, bwd = 0, compute = 0;
  for (int t = 0; t < sp; ++t) {
    const double c_fwd = 4 * h * pairs[t] / flops_per_s, c_bwd = 10 * h * pairs[t] / flops_per_s;
    // Forward: the next shard moves during step t (none after the last). Backward: the next
    // K|V shard and the dK|dV accumulator of step t - 1 share the link.
    const double x_fwd = t + 1 < sp ? b * n * kv_bytes / link_bytes_per_s : 0;
    const double x_bwd = ((t + 1 < sp ? kv_bytes : 0) + (t > 0 ? dkv_bytes : 0)) * b * n / link_bytes_per_s;
    fwd += std::max(c_fwd, x_fwd);
    bwd += std::max(c_bwd, x_bwd);
    compute += c_fwd + c_bwd;
  }
  if (sp > 1) bwd += b * n * dkv_bytes / link_bytes_per_s;  // the accumulator's last hop home
  p.attention_compute_s = layers * compute;
  p.ring_exposed_s = layers * (fwd + bwd - compute);

  RingCondition& r = p.ring;
  r.block_tokens = n;
  const double mid_pairs = b * n * n * share;
  r.fwd_step_compute_s = 4 * h * mid_pairs / flops_per_s;
  r.bwd_step_compute_s = 10 * h * mid_pairs / flops_per_s;
  r.fwd_step_transfer_s = sp > 1 ? b * n * kv_bytes / link_bytes_per_s : 0;
  r.bwd_step_transfer_s = sp > 1 ? b * n * (kv_bytes + dkv_bytes) / link_bytes_per_s : 0;
  // compute(c) = k h share b c^2 / F >= transfer(c) = b c bytes / B  <=>  c >= F bytes / (k h share B)
  r.fwd_min_block_tokens = flops_per_s * kv_bytes / (4 * h * share * link_bytes_per_s);
  r.bwd_min_block_tokens = flops_per_s * (kv_bytes + dkv_bytes) / (10 * h * share * link_bytes_per_s);

  // FSDP: the embedding and head gathered once, each layer twice; every unit reduce-scattered.
  const std::vector<model::ParamUnit> units = model::parameter_units(m);
  const double ranks = double(s.ranks());
  auto padded = [&](int64_t count) { return double((count + s.ranks() - 1) / s.ranks()) * ranks; };
  // All-gathers move the working copy (bf16: 2 bytes), reduce-scatters fp32 gradients.
  const double g = s.bf16 ? 2 : kF32;
  const double moved_bytes = (g + kF32) * padded(units.front().count) + (2 * g + kF32) * layers * padded(units[1].count) +
                             (g + kF32) * padded(units.back().count);
  p.fsdp_s = (ranks - 1) / ranks * moved_bytes / fsdp_link_bytes_per_s * double(s.micro_batches());  // per pass
  return p;
}

}  // namespace rw::plan
