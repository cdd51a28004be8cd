// global_batch.cpp
#include "src/data/global_batch.h"

#include <string>

#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::data {

LocalBatch slice_global_batch(const GlobalBatch& g, int dp, int dp_rank, int sp, int sp_rank, Layout layout) {
  if (g.n_sequences % dp != 0)
    throw InputError("the global batch of " + std::to_string(g.n_sequences) + " sequences cannot be split over dp = " +
                     std::to_string(dp) + " groups");
  check_ring_split(layout, g.seq_len, sp);
  const int per_group = g.n_sequences / dp;
  const auto idx = local_token_indices(layout, g.seq_len, sp, sp_rank);
  LocalBatch b;
  b.n_sequences = per_group;
  b.n_local = static_cast<int>(idx.size());
  const std::size_t n = static_cast<std::size_t>(per_group) * idx.size();
  b.tokens.resize(n);
  b.targets.resize(n);
  b.positions.resize(n);
  b.segment_ids.resize(n);
  b.loss_weights.resize(n);
  for (int s = 0; s < per_group; ++s) {
    const std::size_t src_row = static_cast<std::size_t>(dp_rank * per_group + s) * g.seq_len;
    for (std::size_t i = 0; i < idx.size(); ++i) {
      const std::size_t dst = static_cast<std::size_t>(s) * idx.size() + i, src = src_row + idx[i];
      b.tokens[dst] = g.tokens[src];
      b.targets[dst] = g.targets[src];
      b.positions[dst] = g.positions[src];
      b.segment_ids[dst] = g.segment_ids[src];
      b.loss_weights[dst] = g.loss_weights[src];
    }
  }
  return b;
}

LocalBatch sequences_of(const LocalBatch& b, int first, int count) {
  RW_CHECK(first >= 0 && count >= 0 && first + count <= b.n_sequences, "micro-batch outside the local batch");
  LocalBatch m;
  m.n_sequences = count;
  m.n_local = b.n_local;
  const std::size_t begin = static_cast<std::size_t>(first) * b.n_local,
                    end = begin + static_cast<std::size_t>(count) * b.n_local;
  m.tokens.assign(b.tokens.begin() + begin, b.tokens.begin() + end);
  m.targets.assign(b.targets.begin() + begin, b.targets.begin() + end);
  m.positions.assign(b.positions.begin() + begin, b.positions.begin() + end);
  m.segment_ids.assign(b.segment_ids.begin() + begin, b.segment_ids.begin() + end);
  m.loss_weights.assign(b.loss_weights.begin() + begin, b.loss_weights.begin() + end);
  return m;
}

int micro_batch_sequences(int64_t micro_tokens, int64_t global_tokens, int64_t seq_len, int dp) {
  if (micro_tokens < 0) throw InputError("--micro-batch-tokens must not be negative");
  if (micro_tokens == 0 || micro_tokens >= global_tokens) return 0;
  const int64_t unit = seq_len * dp;
  if (micro_tokens % unit != 0 || global_tokens % micro_tokens != 0)
    throw InputError("--micro-batch-tokens " + std::to_string(micro_tokens) + " must be a multiple of seq-len " +
                     std::to_string(seq_len) + " x dp " + std::to_string(dp) + " (whole sequences for every dp group) " +
                     "that divides the global batch of " + std::to_string(global_tokens) + " tokens");
  return static_cast<int>(micro_tokens / unit);
}

void derive_targets_positions_weights(GlobalBatch& g) {
  const std::size_t n = static_cast<std::size_t>(g.n_sequences) * g.seq_len;
  g.targets.assign(n, -1);
  g.positions.assign(n, 0);
  g.loss_weights.assign(n, 0.f);
  for (int s = 0; s < g.n_sequences; ++s) {
    const std::size_t row = static_cast<std::size_t>(s) * g.seq_len;
    int32_t pos = 0;
    for (int t = 0; t < g.seq_len; ++t) {
      const std::size_t i = row + t;
      if (t > 0 && g.segment_ids[i] != g.segment_ids[i - 1]) pos = 0;
      g.positions[i] = pos++;
      if (t + 1 < g.seq_len && g.segment_ids[i + 1] == g.segment_ids[i]) {
        g.targets[i] = g.tokens[i + 1];
        g.loss_weights[i] = 1.f;
      }
    }
  }
}

}  // namespace rw::data
