// synthetic_source.h: a learnable synthetic token stream for training before real data: each
// document is an arithmetic progression modulo the vocabulary (a random start and a random
// stride in 1..7) with 5% of tokens replaced by noise; a model must read the stride from the
// context to predict the next token, so the loss falls from log(vocab) towards the noise floor.
// With `packed`, documents of random lengths (seq/8 .. seq/2) are packed with segment ids.
// Sequence i of the stream depends only on (seed, i): any grid sees the same data.
#pragma once
#include <cstdint>

#include "src/attention/layout.h"
#include "src/data/batch.h"
#include "src/data/global_batch.h"

namespace rw::data {

struct SyntheticOptions {
  uint64_t seed = 1;
  int seq_len = 1024;
  int global_sequences = 1;  // sequences per step, over all dp groups
  int vocab_size = 256;
  bool packed = true;
};

GlobalBatch synthetic_global_batch(const SyntheticOptions& options, uint64_t first_sequence);

class SyntheticSource : public DataSource {
 public:
  SyntheticSource(SyntheticOptions options, int dp, int dp_rank, int sp, int sp_rank, Layout layout);
  LocalBatch next() override;
  uint64_t cursor() const override { return cursor_; }
  void seek(uint64_t cursor) override { cursor_ = cursor; }

 private:
  SyntheticOptions options_;
  int dp_, dp_rank_, sp_, sp_rank_;
  Layout layout_;
  uint64_t cursor_ = 0;  // index of the next global batch's first sequence
};

}  // namespace rw::data
