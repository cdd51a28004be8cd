// packed_loader.h: training batches from a token dataset (io/token_dataset.h).
// Documents are visited in a seeded random order (a new permutation each epoch) and packed
// into sequences of seq_len tokens, in one of two modes:
//   masked  (default) each document is its own segment: positions restart at 0, attention and
//           targets stay inside it, and every token of a packed example carries the weight
//           1 / (its example's target count), so the loss is the mean over examples of each
//           example's mean loss: an example counts as it would alone (LWM's masked packing).
//           A document longer than the room left continues in the next sequence as a new
//           segment whose positions continue where it stopped; no padding anywhere.
//   concat  documents back to back as one segment, positions 0..seq_len-1, weight 1.
// Targets: the next token of the document (-1 at its end); a dataset loss mask of 0 on a token
// removes it as a target. The global batch is split over dp groups (whole sequences) and each
// sequence over the sp ring in the configured layout. The packing plan depends only on document
// lengths, so every rank computes it for the whole global batch and reads only the documents
// of its own sequences. cursor() counts global sequences produced; seek() replays the plan.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/token_dataset.h"
#include "src/attention/layout.h"
#include "src/data/batch.h"
#include "src/data/global_batch.h"

namespace rw::data {

struct PackedLoaderOptions {
  int seq_len = 1024;
  int global_sequences = 1;
  uint64_t seed = 1;
  bool masked = true;             // masked packing (segments) or plain concatenation
  int64_t min_doc_tokens = 1;     // documents outside the bounds are skipped
  int64_t max_doc_tokens = 0;     // 0: no bound
  int dp = 1, dp_rank = 0, sp = 1, sp_rank = 0;
  Layout layout = Layout::zigzag;
};

class PackedLoader : public DataSource {
 public:
  // Throws InputError if the file is bad, no document passes the bounds, or the dataset's
  // vocabulary exceeds model_vocab.
  PackedLoader(const std::string& path, PackedLoaderOptions options, int64_t model_vocab);
  LocalBatch next() override;
  uint64_t cursor() const override { return sequences_done_; }
  void seek(uint64_t cursor) override;

  // The whole global batch that next() would slice (for tests and tools).
  GlobalBatch next_global();

 private:
  struct Piece {  // tokens [begin, end) of document doc at sequence offset `at`
    int64_t doc, begin, end;
    int at;
  };
  std::vector<Piece> plan_sequence();  // advances the packing state by one sequence
  GlobalBatch build(const std::vector<std::vector<Piece>>& plans, int first, int count);
  int64_t current_doc() const { return order_[position_]; }
  void advance_document();

  std::string path_;
  PackedLoaderOptions options_;
  io::TokenDatasetReader reader_;
  std::vector<int64_t> eligible_;  // documents within the length bounds
  std::vector<int64_t> order_;     // this epoch's permutation of eligible_
  uint64_t epoch_ = 0;
  std::size_t position_ = 0;  // index into order_
  int64_t offset_ = 0;        // tokens of the current document already packed
  uint64_t sequences_done_ = 0;
};

}  // namespace rw::data
