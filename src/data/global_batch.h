// global_batch.h: a batch of whole sequences, and the slice of it one rank trains on.
// Token-major [n_sequences, seq_len] arrays in the original token order.
#pragma once
#include <cstdint>
#include <vector>

#include "src/attention/layout.h"
#include "src/data/batch.h"

namespace rw::data {

struct GlobalBatch {
  int n_sequences = 0;
  int seq_len = 0;
  std::vector<int32_t> tokens, targets, positions, segment_ids;
  std::vector<float> loss_weights;
};

// Sequences [dp_rank * n/dp, (dp_rank + 1) * n/dp) and, of each, the tokens of sp_rank in the
// ring layout (tokens, targets, positions, segments and weights permuted together, once).
// Throws InputError if n_sequences % dp or the sequence split over sp does not work.
LocalBatch slice_global_batch(const GlobalBatch& global, int dp, int dp_rank, int sp, int sp_rank, Layout layout);

// Sequences [first, first + count) of a local batch (a micro-batch): the same n_local tokens of
// each, in the same order. RW_CHECKs the range.
LocalBatch sequences_of(const LocalBatch& batch, int first, int count);

// Sequences of each dp group per micro-batch when micro-batches hold micro_batch_tokens of the
// global batch (train --micro-batch-tokens): 0 (the whole batch at once) for micro_batch_tokens 0
// or >= global_batch_tokens. Throws InputError unless micro_batch_tokens is a multiple of
// seq_len x dp (whole sequences for every dp group) that divides global_batch_tokens.
int micro_batch_sequences(int64_t micro_batch_tokens, int64_t global_batch_tokens, int64_t seq_len, int dp);

// Fills targets (next token of the same segment, -1 at a segment's last token), positions
// (restarting at 0 per segment) and unit weights (0 where the target is ignored) from tokens
// and segment ids.
void derive_targets_positions_weights(GlobalBatch& batch);

}  // namespace rw::data
