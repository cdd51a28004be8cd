// data_sources.h: the training data sources by name, as stages and `train --data` spell them:
//   synthetic            packed documents of a learnable synthetic language (synthetic_source.h)
//   synthetic:flat       the same, one document per sequence
//   synthetic:passkey    needle-in-a-haystack retrieval documents (passkey.h)
//   file:PATH            a token dataset (prepare's output), masked packing (packed_loader.h)
//   file-concat:PATH     the same, plain concatenation
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "src/attention/layout.h"
#include "src/data/batch.h"

namespace rw::data {

struct SourceGeometry {
  int seq_len = 0, global_sequences = 0;
  int dp = 1, dp_rank = 0, sp = 1, sp_rank = 0;
  Layout layout = Layout::zigzag;
  uint64_t seed = 1;
  int64_t vocab_size = 0;         // the model's (text ids; the synthetic sources use these)
  int64_t vision_vocab_size = 0;  // the model's vision ids (a dataset may use vocab_size + these)
};

// Throws InputError for an unknown name or a bad dataset file.
std::unique_ptr<DataSource> make_data_source(const std::string& spec, const SourceGeometry& geometry);

// Checks a spec's syntax only (no file access): throws InputError naming it.
void check_data_spec(const std::string& spec);

}  // namespace rw::data
