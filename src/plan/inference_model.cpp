// inference_model.cpp: see inference_model.h.
#include "src/plan/inference_model.h"

#include <algorithm>
#include <cmath>

#include "src/common/input_error.h"

namespace rw::plan {
namespace {

constexpr double kF32 = 4, kI32 = 4;

// Share of a full (n x n) block pair the slowest rank computes at a ring step after the first
// (as src/plan/step_time_model.cpp: zigzag and striped balance the causal mask).
double step_pair_share(Layout layout) { return layout == Layout::contiguous ? 1.0 : 0.5; }

// The per-rank FSDP shards: ceil(count / N) elements of every unit.
double shard_elements(const std::vector<int64_t>& unit_counts, int ranks) {
  double n = 0;
  for (int64_t count : unit_counts) n += double((count + ranks - 1) / ranks);
  return n;
}

std::vector<int64_t> unit_counts_of(const model::LlamaConfig& m) {
  std::vector<int64_t> counts;
  for (const model::ParamUnit& unit : model::parameter_units(m)) counts.push_back(unit.count);
  return counts;
}

// The prefill's working set on one rank (see the header), item by item; n prompt tokens.
std::vector<MemoryItem> prefill_items(const InferenceShape& s) {
  const model::LlamaConfig& m = s.model;
  const double n = double(s.prompt_tokens_per_rank()), H = double(m.hidden_size), KV = double(m.kv_width()),
               heads = double(m.num_attention_heads), I = double(m.intermediate_size), V = double(m.total_vocab_size());
  const double c = double(std::min(s.ffn_chunk_tokens, s.prompt_tokens_per_rank()));
  const double cl = double(std::min(s.loss_chunk_tokens, s.prompt_tokens_per_rank()));
  const double slots = s.ranks > 1 ? 2 : 1;
  const double ffn = kF32 * c * (2 * I + H), head = kF32 * cl * (V + H);
  return {
      {"residual stream x [tokens, hidden] (fp32)", kF32 * n * H},
      {"normed input, q [tokens, hidden] and this layer's k, v [tokens, kv_width] (fp32)", kF32 * (2 * n * H + 2 * n * KV)},
      {"attention output [tokens, hidden] and lse [tokens, heads] (fp32)", kF32 * (n * H + n * heads)},
      {"ring K|V + pos|seg buffers (" + std::to_string(int(slots)) + " slot(s), fp32 and int32)",
       slots * (kF32 * 2 * n * KV + kI32 * 2 * n)},
      {ffn >= head ? "FFN chunk: gate, up [chunk, intermediate] and its output [chunk, hidden] (fp32)"
                   : "head chunk: normed rows and logits [chunk, vocab] (fp32)",
       std::max(ffn, head)},
      {"prompt shard on the device: tokens, positions, segment ids (int32)", 3 * kI32 * n},
  };
}

double items_bytes(const std::vector<MemoryItem>& items) {
  double n = 0;
  for (const MemoryItem& item : items) n += item.n_bytes;
  return n;
}

InferenceMemory memory_with(const InferenceShape& s, const std::vector<int64_t>& unit_counts, double reserve_bytes) {
  const model::LlamaConfig& m = s.model;
  InferenceMemory p;
  p.reserve_bytes = reserve_bytes;
  p.weight_bytes = s.weight_bytes_per_element * double(m.parameter_count());
  p.weight_shard_bytes = s.weight_bytes_per_element * shard_elements(unit_counts, s.ranks);
  const double per_token = kv_bytes_per_token_per_layer(s) * double(m.num_hidden_layers);
  p.kv_cache_total_bytes = per_token * double(s.cache_tokens());
  p.kv_cache_bytes = per_token * double(s.cache_tokens_per_rank());
  p.kv_cache_prefill_bytes = per_token * double(s.prompt_tokens_per_rank());
  p.prefill_items = prefill_items(s);
  return p;
}

}  // namespace

void InferenceShape::validate() const {
  model.validate();
  if (context_tokens < 1) throw InputError("the context must be at least one token");
  if (new_tokens < 0) throw InputError("--max-new-tokens must not be negative");
  // Positions are int32 in the model (as train's seq-len).
  if (cache_tokens() > (int64_t(1) << 31) - 1)
    throw InputError("context + new tokens = " + std::to_string(cache_tokens()) + " is beyond what the model's positions hold (2^31 - 1)");
  if (ranks < 1) throw InputError("--ranks must be at least 1");
  if (ffn_chunk_tokens < 1 || loss_chunk_tokens < 1) throw InputError("--ffn-chunk must be positive");
  if (!(weight_bytes_per_element > 0) || !(kv_bytes_per_element > 0)) throw InputError("bytes per element must be positive");
}

double kv_bytes_per_token_per_layer(const InferenceShape& s) {
  return 2.0 * double(s.model.num_key_value_heads) * double(s.model.head_dim()) * s.kv_bytes_per_element;
}

double InferenceMemory::prefill_working_bytes() const { return items_bytes(prefill_items); }

InferenceMemory predict_inference_memory(const InferenceShape& s, double reserve_bytes) {
  return memory_with(s, unit_counts_of(s.model), reserve_bytes);
}

int smallest_fitting_inference_ring(InferenceShape s, double usable_bytes, double reserve_bytes, int max_ranks) {
  const std::vector<int64_t> counts = unit_counts_of(s.model);
  // The gathered model and the reserve are on every rank whatever N: nothing fits below them.
  if (reserve_bytes + s.weight_bytes_per_element * double(s.model.parameter_count()) >= usable_bytes) return 0;
  // Everything else shrinks as N grows (not strictly: ceil and the ring's second K/V slot), so
  // the first N that fits is the answer; a linear walk, each step a few dozen operations.
  for (int n = 1; n <= max_ranks; ++n) {
    s.ranks = n;
    if (memory_with(s, counts, reserve_bytes).total_bytes() <= usable_bytes) return n;
  }
  return 0;
}

PrefillPrediction predict_prefill(const InferenceShape& s, double flops_per_s, double link_bytes_per_s) {
  const model::LlamaConfig& m = s.model;
  const double h = double(m.hidden_size), kv = double(m.kv_width()), inter = double(m.intermediate_size),
               vocab = double(m.total_vocab_size()), layers = double(m.num_hidden_layers);
  const double C = double(s.context_tokens), N = double(s.ranks);
  const double n = double(s.prompt_tokens_per_rank());  // the largest shard: the slowest rank
  PrefillPrediction p;
  // Forward per token: layers x (4 h^2 + 4 h kv + 6 h i) + 2 h vocab (step_time_model.cpp's forward).
  p.dense_flops_per_rank = n * (layers * (4 * h * h + 4 * h * kv + 6 * h * inter) + 2 * h * vocab);
  p.attention_flops_per_rank = layers * 4 * h * C * (C + 1) / 2 / N;
  p.dense_s = p.dense_flops_per_rank / flops_per_s;
  // The ring: step 0 is the rank's own causal block (n^2 / 2 pairs); the next shard (K, V fp32
  // and pos, seg int32) travels during each step but the last.
  const double kv_bytes = 2 * kv * kF32 + 2 * kI32;
  const double share = step_pair_share(s.layout);
  double total = 0, compute = 0;
  for (int t = 0; t < s.ranks; ++t) {
    const double c = 4 * h * n * n * (t == 0 ? 0.5 : share) / flops_per_s;
    const double x = t + 1 < s.ranks ? n * kv_bytes / link_bytes_per_s : 0;
    total += std::max(c, x);
    compute += c;
  }
  p.attention_compute_s = layers * compute;
  p.ring_exposed_s = layers * (total - compute);
  return p;
}

DecodePrediction predict_decode(const InferenceShape& s, int64_t cache_tokens, double flops_per_s,
                                double memory_bytes_per_s, const DecodeLinks& links) {
  const model::LlamaConfig& m = s.model;
  const double h = double(m.hidden_size), kv = double(m.kv_width()), inter = double(m.intermediate_size),
               vocab = double(m.total_vocab_size()), layers = double(m.num_hidden_layers), heads = double(m.num_attention_heads);
  DecodePrediction d;
  d.cache_tokens_per_rank = (cache_tokens + s.ranks - 1) / s.ranks;
  const double nc = double(d.cache_tokens_per_rank);
  // Every weight once, but the embedding table: one row of it.
  d.weight_read_bytes = s.weight_bytes_per_element * (double(m.parameter_count()) - vocab * h + h);
  const double gemv_flops = layers * (4 * h * h + 4 * h * kv + 6 * h * inter) + 2 * h * vocab;
  // The query against each cached key: q.k and p.v, 2 h FLOPs each, per layer.
  const double attention_flops = layers * 4 * h * nc;
  d.kv_read_bytes = layers * nc * kv_bytes_per_token_per_layer(s);
  d.flops = gemv_flops + attention_flops;
  d.weights_s = std::max(gemv_flops / flops_per_s, d.weight_read_bytes / memory_bytes_per_s);
  d.attention_s = std::max(attention_flops / flops_per_s, d.kv_read_bytes / memory_bytes_per_s);
  // Per layer: each rank's partial output [heads, head_dim] and its lse [heads], fp32.
  d.allgather_message_bytes = kF32 * heads * (double(m.head_dim()) + 1);
  d.allgather_steps = s.ranks > 1 ? int(std::ceil(std::log2(double(s.ranks)) - 1e-9)) : 0;
  const double others = double(s.ranks - 1);
  const double per_layer = d.allgather_steps * links.latency_s +
                           (s.ranks > 1 ? others * d.allgather_message_bytes / links.bytes_per_s : 0.0);
  d.allgather_s = layers * per_layer;
  d.sent_bytes_per_token = layers * others * d.allgather_message_bytes;
  return d;
}

}  // namespace rw::plan
