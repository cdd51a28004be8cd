// generator.h: autoregressive generation of one sequence on the ring of every rank of a grid
// (dp = 1, sp = N), with a sequence-sharded KV cache that never moves.
//   start(prompt, max_new_tokens): the prompt's first P-1 tokens are prefilled by the training
//     ring attention forward in the chosen layout (padded to what the layout needs with tokens
//     of their own segment, which no real token sees: any prompt length runs on any ring size),
//     each rank keeping its tokens' K/V as its cache shard (cached_attention.h); then the
//     prompt's last token is the first decode step, whose logits start() returns.
//   append(token): one decode step: the token (the same on every rank) is computed on every
//     rank, one rank keeps its K/V (the rank holding the fewest real tokens, ties to the lowest:
//     shards stay balanced), every rank attends its shard and the partials merge by log-sum-exp
//     (one all-gather of heads x (head_dim + 1) floats per rank per layer). Returns the logits of
//     the next token (host memory, total_vocab_size() floats: text then vision
//     columns of a vision model; the same on every rank).
//   start_synthetic(context_tokens, max_new_tokens, seed): a benchmark entry (perf/
//     bench_inference.cpp): starts a sequence as if a prompt of context_tokens had been
//     prefilled, without running the prefill (which would take hours at 128K tokens on a CPU).
//     Each rank's cache holds its balanced share of positions 0..context_tokens-1, placed as
//     the prefill in the chosen layout places them (no padding rows), segment 0, with K and V
//     drawn uniformly in [-1, 1) from a function of (seed, layer, position, element) (rounded
//     to bf16 in a bf16 cache): the whole cache is the same for every ring size and layout,
//     only its split differs. Then append()
//     decodes as after start() (up to max_new_tokens appends).
// The weights are whatever the ParamSource gives: generate_command.cpp keeps every unit
// gathered (FsdpParams with a gather buffer per unit), so decoding moves no weights.
// Every rank makes the same calls in the same order (they are collective).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "device/exec_context.h"
#include "mpi/process_grid.h"
#include "src/attention/attention_ops.h"
#include "src/attention/layout.h"
#include "src/infer/cached_attention.h"
#include "src/infer/kv_cache.h"
#include "src/model/llama_config.h"
#include "src/model/transformer.h"

namespace rw::infer {

struct GeneratorOptions {
  Layout layout = Layout::zigzag;  // the prefill's ring layout
  device::AttnTiling tiling;       // the prefill's attention tiles
  // fp32, or bf16: the model's bf16 mode (transformer.h; the ParamSource should then hand out
  // the bf16 working copy: FsdpParams built with fsdp_options_for) and a bf16 KV cache (half
  // the bytes); the decode's softmax statistics, partials and their merge stay fp32.
  model::Precision precision = model::Precision::fp32;
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t prefill_tokens = 0;       // prompt tokens prefilled on the ring (P - 1)
  int64_t prefill_padded = 0;       // the ring sequence, padding included
  double prefill_s = 0;             // the prefill's wall time on this rank
  std::size_t prefill_bytes_sent = 0;  // this rank's ring traffic in the prefill
  int64_t decode_steps = 0;
  double decode_s = 0;              // wall time of every decode step (this rank)
  std::size_t decode_bytes_sent = 0;   // this rank's payload: merges and token agreement
  std::size_t kv_cache_bytes = 0;   // this rank's cache allocation
  int64_t kv_cache_rows = 0;        // rows this rank holds now (padding included)
};

namespace detail {
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace detail

// Generator::start_synthetic's cache contents: element `element` (of kv_heads x head_dim) of
// the key (which 0) or value (which 1) of `position` in `layer`, uniform in [-1, 1).
inline float synthetic_kv_value(uint64_t seed, int layer, int which, int64_t position, int64_t element) {
  using detail::splitmix64;
  const uint64_t row = splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(2 * layer + which)) ^
                                  static_cast<uint64_t>(position));
  return static_cast<float>(static_cast<double>(splitmix64(row ^ static_cast<uint64_t>(element)) >> 11) * 0x1.0p-52 -
                            1.0);
}

class Generator {
 public:
  Generator(const model::LlamaConfig& config, model::ParamSource<float>& params, mpi::ProcessGrid& grid,
            const device::ExecContext& exec, GeneratorOptions options = {});
  ~Generator();

  // Starts a sequence (any previous one is dropped): prefill, then the prompt's last token.
  // prompt: >= 1 token ids; max_new_tokens >= 1: the appends to come are at most
  // max_new_tokens - 1 (the cache is sized for them). Returns the next token's logits.
  const std::vector<float>& start(const std::vector<int32_t>& prompt, int64_t max_new_tokens);
  // Benchmark entry (see above): a sequence whose first context_tokens (>= 0) K/V are synthetic;
  // max_new_tokens >= 1 appends may follow. Every rank calls it (it communicates nothing); stats()
  // then says prefill_tokens = context_tokens and prefill_s = the time filling this rank's cache.
  void start_synthetic(int64_t context_tokens, int64_t max_new_tokens, uint64_t seed);
  // Appends `token` (the same on every rank; see agree_token) and returns the next logits.
  const std::vector<float>& append(int32_t token);
  // Rank 0's `token` on every rank (rank 0 samples, every rank follows). Collective.
  int32_t agree_token(int32_t token);

  int64_t length() const { return length_; }  // tokens in the sequence so far
  const model::LlamaConfig& config() const { return config_; }
  const GenerationStats& stats() const { return stats_; }
  // The largest KV cache this rank allocated for any sequence since construction, bytes (stats()
  // says the current sequence's; the evaluations run many).
  std::size_t peak_kv_cache_bytes() const { return peak_kv_cache_bytes_; }
  // The decode attention's time split (local shard, merge) since construction (benchmarks).
  const CachedAttentionStats& attention_stats() const { return cached_->stats(); }
  // Real (non-padding) tokens each grid rank holds.
  const std::vector<int64_t>& tokens_per_rank() const { return held_; }

 private:
  const std::vector<float>& decode(int32_t token);
  int holder_of_next() const;
  // Sizes and sets this rank's cache: local_rows prefilled rows, then the rows of the
  // max_new_tokens steps placed on this rank (from held_, the real tokens per rank).
  void allocate_cache(int64_t local_rows, int64_t max_new_tokens);

  model::LlamaConfig config_;
  mpi::ProcessGrid& grid_;
  device::ExecContext exec_;
  GeneratorOptions options_;
  RingAttentionOp ring_op_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<CachedAttentionOp> cached_;
  std::unique_ptr<model::Transformer> model_;
  std::vector<float> logits_;
  std::vector<int64_t> held_;
  int64_t length_ = 0, steps_left_ = 0;
  GenerationStats stats_;
  std::size_t peak_kv_cache_bytes_ = 0;
};

}  // namespace rw::infer
