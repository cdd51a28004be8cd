// inference_model.h: what `ringworld plan --inference` predicts for generation on the ring
// (issue 12): one rank's memory, the prefill's time and each decoded token's time and traffic,
// for a prompt of C tokens over a ring of N ranks. It follows the design of the generation path:
//
//   weights   every rank holds the whole model resident (the FSDP shards plus one gathered copy
//             of every unit, kept), at the precision's bytes per element, so decoding moves no
//             weights.
//   KV cache  each rank keeps the K and V of its own tokens: per token and layer
//             2 x kv_heads x head_dim elements; a rank holds ceil(tokens / N) of them (the
//             shards are balanced, new tokens included).
//   prefill   the training ring forward (src/plan/step_time_model.h, its forward half): dense
//             layers x (4 h^2 + 4 h kv + 6 h i) + 2 h vocab FLOPs per token (2 x the matmul
//             parameters: every projection and the lm_head at every position, as the training
//             forward computes them), causal attention 4 h FLOPs per visible pair, C (C + 1) / 2
//             pairs shared by the ring (contiguous: the slowest rank computes full block pairs),
//             ring steps lasting max(compute, K/V transfer). Its working memory is the training
//             forward's buffers without what training saves for the backward (an estimate:
//             activations and ring messages fp32, as the training forward computes them).
//   decode    per new token every rank computes the token's layers redundantly (GEMV over every
//             weight but the embedding table, of which one row is read: memory-bound), attends
//             its own KV shard (read once per token), and all-gathers per layer one partial
//             result of heads x (head_dim + 1) fp32 values (output and log-sum-exp per head) to
//             merge them exactly. Each part lasts max(FLOPs / peak, bytes / memory bandwidth)
//             (a roofline); the all-gather is recursive doubling: ceil(log2 N) steps of one
//             latency each plus (N - 1) messages at the link's bandwidth.
// Not modelled: loading the model, the sampling and the token's broadcast (a few bytes), kernel
// launch overheads beyond the per-step latency, memory-bound work of the prefill (norms, RoPE).
// Pure: no MPI, no device.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/attention/layout.h"
#include "src/model/llama_config.h"
#include "src/plan/memory_model.h"

namespace rw::plan {

struct InferenceShape {
  model::LlamaConfig model;
  int64_t context_tokens = 0;  // the prompt, prefilled on the ring
  int64_t new_tokens = 0;      // decoded after the prompt (their K/V join the cache)
  int ranks = 1;               // the ring
  Layout layout = Layout::zigzag;
  int64_t ffn_chunk_tokens = 1024;   // the training forward's FFN chunk (train --ffn-chunk)
  int64_t loss_chunk_tokens = 512;   // rows of logits at a time in the training forward's head
  double weight_bytes_per_element = 2;  // bf16 2, fp32 4
  double kv_bytes_per_element = 2;

  int64_t cache_tokens() const { return context_tokens + new_tokens; }
  // The largest shard: ceil(tokens / ranks).
  int64_t prompt_tokens_per_rank() const { return (context_tokens + ranks - 1) / ranks; }
  int64_t cache_tokens_per_rank() const { return (cache_tokens() + ranks - 1) / ranks; }
  // Throws InputError naming the problem.
  void validate() const;
};

// K and V of one token in one layer: 2 x kv_heads x head_dim x bytes per element.
double kv_bytes_per_token_per_layer(const InferenceShape& shape);

struct InferenceMemory {
  double weight_bytes = 0;        // the gathered copy of the whole model
  double weight_shard_bytes = 0;  // the FSDP shards, ceil(unit / N) per unit
  double kv_cache_total_bytes = 0;   // the whole cache (all ranks) after the last new token
  double kv_cache_bytes = 0;         // one rank's shard of it (the largest)
  double kv_cache_prefill_bytes = 0; // one rank's shard when the prompt is in (the prefill's peak)
  std::vector<MemoryItem> prefill_items;  // the prefill's working set at the last layer
  double reserve_bytes = 0;

  double prefill_working_bytes() const;
  double prefill_peak_bytes() const { return reserve_bytes + weight_bytes + weight_shard_bytes + kv_cache_prefill_bytes + prefill_working_bytes(); }
  double decode_peak_bytes() const { return reserve_bytes + weight_bytes + weight_shard_bytes + kv_cache_bytes; }
  double total_bytes() const { return prefill_peak_bytes() > decode_peak_bytes() ? prefill_peak_bytes() : decode_peak_bytes(); }
};

// shape must be valid.
InferenceMemory predict_inference_memory(const InferenceShape& shape, double reserve_bytes);

// The smallest ring (any N: a prompt of any length runs on any ring size) whose predicted
// peak fits in usable_bytes per rank; 0 when none up to max_ranks does.
int smallest_fitting_inference_ring(InferenceShape shape, double usable_bytes, double reserve_bytes, int max_ranks);

struct PrefillPrediction {
  double dense_flops_per_rank = 0;      // balanced: C / N tokens
  double attention_flops_per_rank = 0;  // balanced share of the causal pairs
  double dense_s = 0;
  double attention_compute_s = 0;       // the slowest rank
  double ring_exposed_s = 0;            // K/V transfer time the attention compute does not hide
  double seconds() const { return dense_s + attention_compute_s + ring_exposed_s; }
};

// flops_per_s: one rank's rate (peak x efficiency); ring_link_bytes_per_s: the ring's slowest link.
PrefillPrediction predict_prefill(const InferenceShape& shape, double flops_per_s, double ring_link_bytes_per_s);

struct DecodeLinks {
  double bytes_per_s = 0;  // one direction, the slowest link the all-gather crosses
  double latency_s = 0;    // one message step on that link
};

struct DecodePrediction {
  int64_t cache_tokens_per_rank = 0;   // at the token predicted (the last new token, or the first)
  double flops = 0;                    // per rank: the token's layers and head, and its attention
  double weight_read_bytes = 0;        // per rank per token
  double kv_read_bytes = 0;            // per rank per token: the rank's KV shard
  double weights_s = 0;                // max(GEMV FLOPs / peak, weight bytes / bandwidth)
  double attention_s = 0;              // max(attention FLOPs / peak, KV bytes / bandwidth)
  double allgather_message_bytes = 0;  // one rank's partial result for one layer
  int allgather_steps = 0;             // per layer: ceil(log2 N)
  double allgather_s = 0;              // all layers
  double sent_bytes_per_token = 0;     // per rank, all layers: (N - 1) messages per layer
  double seconds() const { return weights_s + attention_s + allgather_s; }
};

// The time of one new token with cache_tokens tokens cached (over the ring).
DecodePrediction predict_decode(const InferenceShape& shape, int64_t cache_tokens, double flops_per_s,
                                double memory_bytes_per_s, const DecodeLinks& links);

}  // namespace rw::plan
