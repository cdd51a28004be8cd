// batch.h: what a data source yields to a rank each step: its slice of the global batch
// (the sequences of its dp group, and of each sequence its sp ring shard, in ring layout).
// Token-major arrays [n_sequences, n_local]; targets < 0 are ignored by the loss.
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

// A source of local batches; the data pipeline implements it for real datasets.
class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual LocalBatch next() = 0;
  virtual uint64_t cursor() const = 0;        // position in the stream (saved in checkpoints)
  virtual void seek(uint64_t cursor) = 0;     // resume exactly there
};

}  // namespace rw::data
