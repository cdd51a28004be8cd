// local_batch.h: what a data source yields to a rank each step: its slice of the global batch
// (the sequences of its dp group, and of each sequence its sp ring shard, in ring layout).
// Token-major arrays [n_sequences, n_local]; targets < 0 are ignored by the loss. A plain
// struct that io/ (the forward tool's input) and core share, so it lives in common.
#pragma once
#include <cstdint>
#include <vector>

namespace rw::data {

struct LocalBatch {
  int n_sequences = 0;  // sequences of this dp group
  int n_local = 0;      // tokens of each sequence on this rank
  std::vector<int32_t> tokens, targets, positions, segment_ids;
  std::vector<float> loss_weights;
  int64_t token_count() const { return static_cast<int64_t>(n_sequences) * n_local; }
};

}  // namespace rw::data
