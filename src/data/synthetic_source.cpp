// synthetic_source.cpp
#include "src/data/synthetic_source.h"

#include <algorithm>

#include "src/model/param_init.h"

namespace rw::data {
namespace {

// Deterministic stream of uniform draws for one sequence.
struct SequenceRng {
  uint64_t seed, sequence, counter = 0;
  double uniform() { return model::hashed_unit_interval(seed, 1000 + sequence, counter++); }
  int below(int n) { return std::min(n - 1, static_cast<int>(uniform() * n)); }
};

}  // namespace

GlobalBatch synthetic_global_batch(const SyntheticOptions& o, uint64_t first_sequence) {
  GlobalBatch g;
  g.n_sequences = o.global_sequences;
  g.seq_len = o.seq_len;
  const std::size_t n = static_cast<std::size_t>(g.n_sequences) * g.seq_len;
  g.tokens.resize(n);
  g.segment_ids.resize(n);
  for (int s = 0; s < g.n_sequences; ++s) {
    SequenceRng rng{o.seed, first_sequence + s};
    int t = 0, doc = 0;
    while (t < o.seq_len) {
      int length = o.packed ? o.seq_len / 8 + rng.below(std::max(1, o.seq_len / 2 - o.seq_len / 8)) : o.seq_len;
      // At least 2 tokens (one target), never past the sequence, and no 1-token scrap after it.
      const int room = o.seq_len - t;
      length = std::max(2, std::min(length, room));
      if (room - length < 2) length = room;
      const int start = rng.below(o.vocab_size), stride = 1 + rng.below(7);
      for (int j = 0; j < length; ++j, ++t) {
        const std::size_t i = static_cast<std::size_t>(s) * o.seq_len + t;
        g.tokens[i] = rng.uniform() < 0.05 ? rng.below(o.vocab_size)
                                           : static_cast<int32_t>((start + static_cast<int64_t>(j) * stride) % o.vocab_size);
        g.segment_ids[i] = doc;
      }
      ++doc;
    }
  }
  derive_targets_positions_weights(g);
  return g;
}

SyntheticSource::SyntheticSource(SyntheticOptions options, int dp, int dp_rank, int sp, int sp_rank, Layout layout)
    : options_(options), dp_(dp), dp_rank_(dp_rank), sp_(sp), sp_rank_(sp_rank), layout_(layout) {}

LocalBatch SyntheticSource::next() {
  // Every rank of a dp group builds the group's sequences whole (cheap next to training), then
  // keeps its own tokens.
  SyntheticOptions mine = options_;
  const int per_group = options_.global_sequences / dp_;
  mine.global_sequences = per_group;
  GlobalBatch g = synthetic_global_batch(mine, cursor_ + static_cast<uint64_t>(dp_rank_) * per_group);
  cursor_ += options_.global_sequences;
  return slice_global_batch(g, 1, 0, sp_, sp_rank_, layout_);
}

}  // namespace rw::data
