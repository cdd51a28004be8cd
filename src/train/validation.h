// validation.h: validation loss on held-out data during training, overall and by position in
// the context (what a long-context user plots: does the model use the far context?).
//   The same sequences every time (the source is rewound before each evaluation), forward only
//   (no gradients, no optimizer), in batches no larger than a training step's, so memory stays
//   within the step's.
//   loss = sum(w * CE) / sum(w) over the held-out tokens; bucket b holds the tokens whose
//   position (the RoPE position: the context the token has in its document) lies in
//   [b * width, (b + 1) * width); perplexity = exp(loss). A vision model's loss is LWM's
//   (lwm_loss.h: 0.5 x mean vision CE + 0.5 x mean text CE over the held-out tokens), with each
//   kind's mean beside it; its buckets hold the plain weighted mean of both kinds.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mpi/process_grid.h"
#include "src/data/batch.h"
#include "src/data/data_sources.h"
#include "src/train/trainer.h"

namespace rw::train {

struct ValidationBucket {
  int64_t from = 0, to = 0;  // positions [from, to)
  double loss = 0, weight = 0;
};

struct ValidationResult {
  double loss = 0, weight = 0;
  double text_loss = std::nan(""), vision_loss = std::nan("");  // a vision model's kinds (NaN: none)
  int64_t sequences = 0;
  std::vector<ValidationBucket> buckets;  // only those holding tokens
};

// The bucket width when none is given: seq_len / 8 rounded up to a power of two (>= 1).
int64_t default_bucket_tokens(int64_t seq_len);

// Accumulates per-token losses into buckets: tokens with weight 0 or target < 0 are left out.
// sums holds [loss_0, weight_0, loss_1, weight_1, ...] for ceil(seq_len / width) buckets.
void add_to_buckets(const data::LocalBatch& batch, const std::vector<double>& token_losses, int64_t width,
                    std::vector<double>& sums);

class Validator {
 public:
  // geometry: the stage's, with global_sequences = sequences per evaluation batch; n_batches
  // batches per evaluation. Throws InputError for a bad spec or dataset.
  Validator(const std::string& spec, const data::SourceGeometry& geometry, int n_batches, int64_t bucket_tokens);
  // Collective over the grid.
  ValidationResult evaluate(Trainer& trainer, mpi::ProcessGrid& grid);
  int64_t sequences() const { return static_cast<int64_t>(geometry_.global_sequences) * n_batches_; }
  int64_t bucket_tokens() const { return width_; }

 private:
  data::SourceGeometry geometry_;
  std::unique_ptr<data::DataSource> source_;
  int n_batches_;
  int64_t width_;
};

// "val loss 3.2104 (ppl 24.8) over 8 sequences | by position: 0-1K 3.41 | 1K-2K 3.12 | ..."
std::string validation_line(const ValidationResult& result);

}  // namespace rw::train
