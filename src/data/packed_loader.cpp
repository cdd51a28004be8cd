// packed_loader.cpp
#include "src/data/packed_loader.h"

#include <algorithm>

#include "src/common/input_error.h"
#include "src/model/param_init.h"

namespace rw::data {

PackedLoader::PackedLoader(const std::string& path, PackedLoaderOptions options, int64_t model_vocab)
    : path_(path), options_(options), reader_(path) {
  const auto& info = reader_.info();
  if (info.vocab_size > model_vocab)
    throw InputError("dataset '" + path + "' has vocabulary " + std::to_string(info.vocab_size) +
                     ", larger than the model's " + std::to_string(model_vocab) +
                     " token ids (vocab_size + vision_vocab_size)");
  if (options_.global_sequences % options_.dp != 0)
    throw InputError("the global batch of " + std::to_string(options_.global_sequences) +
                     " sequences cannot be split over dp = " + std::to_string(options_.dp));
  check_ring_split(options_.layout, options_.seq_len, options_.sp);
  for (int64_t d = 0; d < info.n_docs; ++d) {
    const int64_t n = reader_.doc_length(d);
    if (n >= options_.min_doc_tokens && (options_.max_doc_tokens == 0 || n <= options_.max_doc_tokens))
      eligible_.push_back(d);
  }
  if (eligible_.empty())
    throw InputError("dataset '" + path + "': none of its " + std::to_string(info.n_docs) +
                     " documents has a length within the bounds [" + std::to_string(options_.min_doc_tokens) + ", " +
                     (options_.max_doc_tokens ? std::to_string(options_.max_doc_tokens) : "inf") + "]");
  seek(0);
}

void PackedLoader::seek(uint64_t cursor) {
  epoch_ = 0;
  position_ = 0;
  offset_ = 0;
  sequences_done_ = 0;
  order_ = eligible_;
  // Fisher-Yates with hashed draws: the same order on every rank.
  for (std::size_t i = order_.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(model::hashed_unit_interval(options_.seed, 7000 + epoch_, i) * i);
    std::swap(order_[i - 1], order_[std::min(j, i - 1)]);
  }
  while (sequences_done_ < cursor) {
    plan_sequence();
    ++sequences_done_;
  }
}

void PackedLoader::advance_document() {
  offset_ = 0;
  if (++position_ < order_.size()) return;
  ++epoch_;
  position_ = 0;
  order_ = eligible_;
  for (std::size_t i = order_.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(model::hashed_unit_interval(options_.seed, 7000 + epoch_, i) * i);
    std::swap(order_[i - 1], order_[std::min(j, i - 1)]);
  }
}

std::vector<PackedLoader::Piece> PackedLoader::plan_sequence() {
  std::vector<Piece> pieces;
  int at = 0;
  while (at < options_.seq_len) {
    const int64_t doc = current_doc(), length = reader_.doc_length(doc);
    const int64_t take = std::min<int64_t>(length - offset_, options_.seq_len - at);
    pieces.push_back({doc, offset_, offset_ + take, at});
    at += static_cast<int>(take);
    offset_ += take;
    if (offset_ == length) advance_document();
  }
  return pieces;
}

GlobalBatch PackedLoader::build(const std::vector<std::vector<Piece>>& plans, int first, int count) {
  GlobalBatch g;
  g.n_sequences = count;
  g.seq_len = options_.seq_len;
  const std::size_t n = static_cast<std::size_t>(count) * g.seq_len;
  g.tokens.assign(n, 0);
  g.targets.assign(n, -1);
  g.positions.assign(n, 0);
  g.segment_ids.assign(n, 0);
  g.loss_weights.assign(n, 0.f);
  std::vector<int32_t> doc_tokens;
  std::vector<uint8_t> doc_mask;
  const int64_t vocab = reader_.info().vocab_size;
  for (int s = 0; s < count; ++s) {
    const std::vector<Piece>& plan = plans[first + s];
    const std::size_t row = static_cast<std::size_t>(s) * g.seq_len;
    for (std::size_t p = 0; p < plan.size(); ++p) {
      const Piece& piece = plan[p];
      reader_.read_document(piece.doc, &doc_tokens, &doc_mask);
      int targets = 0;
      for (int64_t t = piece.begin; t < piece.end; ++t) {
        const std::size_t i = row + piece.at + (t - piece.begin);
        if (doc_tokens[t] < 0 || doc_tokens[t] >= vocab)
          throw InputError("dataset '" + path_ + "': document " + std::to_string(piece.doc) + " has token id " +
                           std::to_string(doc_tokens[t]) + " outside its vocabulary of " + std::to_string(vocab));
        g.tokens[i] = doc_tokens[t];
        g.segment_ids[i] = options_.masked ? static_cast<int32_t>(p) : 0;
        g.positions[i] = options_.masked ? static_cast<int32_t>(t) : static_cast<int32_t>(piece.at + (t - piece.begin));
        const bool has_next = t + 1 < static_cast<int64_t>(doc_tokens.size());
        if (has_next && doc_mask[t + 1]) {
          g.targets[i] = doc_tokens[t + 1];
          ++targets;
        }
      }
      // Concatenation: the last token of a document predicts the next document's first token.
      if (!options_.masked && p + 1 < plan.size() && plan[p].end == reader_.doc_length(plan[p].doc)) {
        const std::size_t i = row + piece.at + (piece.end - piece.begin) - 1;
        std::vector<int32_t> next_tokens;
        std::vector<uint8_t> next_mask;
        reader_.read_document(plan[p + 1].doc, &next_tokens, &next_mask);
        if (next_mask[plan[p + 1].begin]) {
          g.targets[i] = next_tokens[plan[p + 1].begin];
          ++targets;
        }
      }
      for (int64_t t = piece.begin; t < piece.end; ++t) {
        const std::size_t i = row + piece.at + (t - piece.begin);
        if (g.targets[i] >= 0) g.loss_weights[i] = options_.masked ? 1.f / static_cast<float>(targets) : 1.f;
      }
    }
  }
  return g;
}

GlobalBatch PackedLoader::next_global() {
  std::vector<std::vector<Piece>> plans;
  for (int s = 0; s < options_.global_sequences; ++s) plans.push_back(plan_sequence());
  sequences_done_ += options_.global_sequences;
  return build(plans, 0, options_.global_sequences);
}

LocalBatch PackedLoader::next() {
  // Plan the whole global batch (lengths only), read the documents of this dp group only.
  std::vector<std::vector<Piece>> plans;
  for (int s = 0; s < options_.global_sequences; ++s) plans.push_back(plan_sequence());
  sequences_done_ += options_.global_sequences;
  const int per_group = options_.global_sequences / options_.dp;
  const GlobalBatch mine = build(plans, options_.dp_rank * per_group, per_group);
  return slice_global_batch(mine, 1, 0, options_.sp, options_.sp_rank, options_.layout);
}

}  // namespace rw::data
