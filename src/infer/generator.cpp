// generator.cpp: see generator.h.
#include "src/infer/generator.h"

#include <algorithm>
#include <climits>
#include <string>

#include "src/common/fatal.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"

namespace rw::infer {

namespace {

RingOptions prefill_ring_options(const GeneratorOptions& options) {
  RingOptions ro;
  ro.causal = true;
  ro.tiling = options.tiling;
  return ro;
}

// The ring sequence the prefill of n tokens runs as: the smallest length >= n (and >= one
// token per rank) that the layout splits over ring_size ranks.
int64_t padded_length(Layout layout, int64_t n, int ring_size) {
  const int64_t unit = layout == Layout::zigzag ? 2 * static_cast<int64_t>(ring_size) : ring_size;
  return std::max<int64_t>(unit, (n + unit - 1) / unit * unit);
}

}  // namespace

Generator::Generator(const model::LlamaConfig& config, model::ParamSource<float>& params, mpi::ProcessGrid& grid,
                     const device::ExecContext& exec, GeneratorOptions options)
    : config_(config), grid_(grid), exec_(exec), options_(options),
      ring_op_(exec, grid.ring(), prefill_ring_options(options)) {
  RW_CHECK(grid.dp() == 1, "generation runs on one ring: dp must be 1");
  mpi::ProcessGrid* g = &grid_;
  cached_ = std::make_unique<CachedAttentionOp>(
      exec_, ring_op_, grid_.size(),
      [g](const float* mine, std::size_t count, float* all) { g->allgather(mine, count, all, "decode attention merge"); });
  model::TransformerOptions model_options;
  model_options.precision = options_.precision;
  model_ = std::make_unique<model::Transformer>(config_, params, *cached_, exec_, model_options);
}

Generator::~Generator() = default;

int Generator::holder_of_next() const {
  return static_cast<int>(std::min_element(held_.begin(), held_.end()) - held_.begin());
}

const std::vector<float>& Generator::start(const std::vector<int32_t>& prompt, int64_t max_new_tokens) {
  RW_CHECK(!prompt.empty() && max_new_tokens >= 1, "generation needs a prompt and at least one new token");
  const int world = grid_.size(), rank = grid_.rank();
  const int64_t prefill = static_cast<int64_t>(prompt.size()) - 1;
  const int64_t total = prefill + max_new_tokens;
  if (total > INT32_MAX) throw InputError("the prompt and the tokens to generate exceed 2^31 positions");
  stats_ = GenerationStats{};
  stats_.prompt_tokens = static_cast<int64_t>(prompt.size());
  stats_.prefill_tokens = prefill;
  for (int32_t t : prompt)
    if (t < 0 || t >= config_.total_vocab_size())
      throw InputError("prompt token " + std::to_string(t) + " is outside the model's vocabulary of " +
                       std::to_string(config_.total_vocab_size()));

  // Who holds what: the prefill's local tokens, then the decode steps' placement (the same
  // computation on every rank), which sizes each rank's cache exactly.
  const int64_t padded = prefill > 0 ? padded_length(options_.layout, prefill, world) : 0;
  held_.assign(static_cast<std::size_t>(world), 0);
  std::vector<int64_t> local;
  if (padded > 0) {
    for (int r = 0; r < world; ++r)
      for (int64_t i : local_token_indices(options_.layout, padded, world, r))
        if (i < prefill) ++held_[static_cast<std::size_t>(r)];
    local = local_token_indices(options_.layout, padded, world, rank);
  }
  allocate_cache(static_cast<int64_t>(local.size()), max_new_tokens);

  const double t0 = wall_seconds();
  const std::size_t ring_bytes0 = ring_op_.bytes_sent;
  if (padded > 0) {
    data::LocalBatch batch;
    batch.n_sequences = 1;
    batch.n_local = static_cast<int>(local.size());
    for (int64_t i : local) {
      const bool real = i < prefill;
      batch.tokens.push_back(real ? prompt[static_cast<std::size_t>(i)] : 0);
      batch.targets.push_back(-1);
      batch.positions.push_back(static_cast<int32_t>(i));
      batch.segment_ids.push_back(real ? 0 : 1);  // padding: its own segment, seen by no real token
      batch.loss_weights.push_back(0.f);
    }
    cached_->start_prefill();
    model_->forward_without_head(batch);
    exec_.backend->synchronize(*exec_.compute);
  }
  stats_.prefill_padded = padded;
  stats_.prefill_bytes_sent = ring_op_.bytes_sent - ring_bytes0;
  stats_.prefill_s = wall_seconds() - t0;
  length_ = prefill;
  steps_left_ = max_new_tokens;
  return decode(prompt.back());
}

void Generator::allocate_cache(int64_t local_rows, int64_t max_new_tokens) {
  std::vector<int64_t> held_after = held_;
  int64_t appended_here = 0;
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    const int r = static_cast<int>(std::min_element(held_after.begin(), held_after.end()) - held_after.begin());
    ++held_after[static_cast<std::size_t>(r)];
    if (r == grid_.rank()) ++appended_here;
  }
  cache_.reset();  // the previous sequence's cache goes before the new one is allocated
  cache_ = std::make_unique<KvCache>(*exec_.backend, static_cast<int>(config_.num_hidden_layers),
                                     static_cast<int>(config_.num_key_value_heads),
                                     static_cast<int>(config_.head_dim()), local_rows + appended_here,
                                     model::working_dtype(options_.precision));
  cached_->set_cache(cache_.get());
  stats_.kv_cache_bytes = cache_->bytes();
  peak_kv_cache_bytes_ = std::max(peak_kv_cache_bytes_, stats_.kv_cache_bytes);
}

void Generator::start_synthetic(int64_t context_tokens, int64_t max_new_tokens, uint64_t seed) {
  RW_CHECK(context_tokens >= 0 && max_new_tokens >= 1, "synthetic generation needs a context >= 0 and a new token");
  if (context_tokens + max_new_tokens > INT32_MAX)
    throw InputError("the context and the tokens to generate exceed 2^31 positions");
  const int world = grid_.size(), rank = grid_.rank();
  stats_ = GenerationStats{};
  stats_.prompt_tokens = context_tokens;
  stats_.prefill_tokens = context_tokens;
  // The positions the prefill of context_tokens would leave on each rank, padding dropped.
  const int64_t padded = context_tokens > 0 ? padded_length(options_.layout, context_tokens, world) : 0;
  held_.assign(static_cast<std::size_t>(world), 0);
  std::vector<int32_t> local;
  for (int r = 0; padded > 0 && r < world; ++r)
    for (int64_t i : local_token_indices(options_.layout, padded, world, r))
      if (i < context_tokens) {
        ++held_[static_cast<std::size_t>(r)];
        if (r == rank) local.push_back(static_cast<int32_t>(i));
      }
  const int64_t n = static_cast<int64_t>(local.size());
  allocate_cache(n, max_new_tokens);

  const double t0 = wall_seconds();
  device::Backend& be = *exec_.backend;
  be.synchronize(*exec_.compute);  // nothing of a previous sequence still reads the cache
  be.copy_to_device(cache_->pos(), local.data(), static_cast<std::size_t>(n) * sizeof(int32_t));
  const std::vector<int32_t> segments(static_cast<std::size_t>(n), 0);
  be.copy_to_device(cache_->seg(), segments.data(), static_cast<std::size_t>(n) * sizeof(int32_t));
  const int64_t width = cache_->row_floats(), chunk_rows = 1024;
  const bool bf16 = cache_->dtype() == device::DType::bf16;
  std::vector<float> staging(static_cast<std::size_t>(std::min<int64_t>(n, chunk_rows) * width));
  std::vector<device::bf16_t> staging_bf16(bf16 ? staging.size() : 0);
  for (int layer = 0; layer < cache_->layers(); ++layer)
    for (int which = 0; which < 2; ++which) {
      auto dst = [&](int64_t row) { return which == 0 ? cache_->k_row(layer, row) : cache_->v_row(layer, row); };
      for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
        const int64_t rows = std::min(chunk_rows, n - r0);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t e = 0; e < width; ++e)
            staging[static_cast<std::size_t>(r * width + e)] =
                synthetic_kv_value(seed, layer, which, local[static_cast<std::size_t>(r0 + r)], e);
        const std::size_t count = static_cast<std::size_t>(rows * width);
        if (bf16) {
          for (std::size_t i = 0; i < count; ++i) staging_bf16[i] = device::bf16_from_float(staging[i]);
          be.copy_to_device(dst(r0), staging_bf16.data(), count * sizeof(device::bf16_t));
        } else {
          be.copy_to_device(dst(r0), staging.data(), count * sizeof(float));
        }
      }
    }
  cache_->set_size(n);
  stats_.prefill_s = wall_seconds() - t0;
  stats_.kv_cache_rows = n;
  length_ = context_tokens;
  steps_left_ = max_new_tokens;
}

const std::vector<float>& Generator::append(int32_t token) {
  if (token < 0 || token >= config_.total_vocab_size())
    throw InputError("token " + std::to_string(token) + " is outside the model's vocabulary of " +
                     std::to_string(config_.total_vocab_size()));
  return decode(token);
}

const std::vector<float>& Generator::decode(int32_t token) {
  RW_CHECK(cache_ != nullptr, "generation: append before start");
  RW_CHECK(steps_left_ > 0, "generation: more tokens appended than start() made room for");
  const double t0 = wall_seconds();
  const std::size_t merge_bytes0 = cached_->stats().merge_bytes_sent;
  const int holder = holder_of_next();
  data::LocalBatch one;
  one.n_sequences = 1;
  one.n_local = 1;
  one.tokens = {token};
  one.targets = {-1};
  one.positions = {static_cast<int32_t>(length_)};
  one.segment_ids = {0};
  one.loss_weights = {0.f};
  cached_->start_decode(holder == grid_.rank());
  logits_.resize(static_cast<std::size_t>(config_.total_vocab_size()));  // text then vision columns
  model_->forward(one, logits_.data());
  ++held_[static_cast<std::size_t>(holder)];
  ++length_;
  --steps_left_;
  ++stats_.decode_steps;
  stats_.decode_s += wall_seconds() - t0;
  stats_.decode_bytes_sent += cached_->stats().merge_bytes_sent - merge_bytes0;
  stats_.kv_cache_rows = cache_->size();
  return logits_;
}

int32_t Generator::agree_token(int32_t token) {
  uint64_t value = grid_.rank() == 0 ? static_cast<uint64_t>(static_cast<uint32_t>(token)) : 0;
  grid_.allreduce_sum_u64(&value, 1);  // rank 0's value (the others add 0): a broadcast
  if (grid_.rank() == 0) stats_.decode_bytes_sent += sizeof(uint64_t) * static_cast<std::size_t>(grid_.size() - 1);
  return static_cast<int32_t>(static_cast<uint32_t>(value));
}

}  // namespace rw::infer
