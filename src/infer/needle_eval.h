// needle_eval.h: needle-in-a-haystack accuracy of a model on passkey documents (passkey.h) over
// a grid of context lengths and needle depths. An answer counts when every answer digit is the
// model's greedy (argmax) choice given the true prefix: teacher-forced exact match, which equals
// greedy decoding of the answer. Runs the model over the ring (documents sharded over the
// ranks), one forward per length with every (depth, trial) document in the batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/attention/layout.h"
#include "src/data/passkey.h"
#include "src/model/transformer.h"

namespace rw::infer {

struct NeedleCell {
  int length = 0;
  double depth = 0;
  int trials = 0, correct = 0;
  double accuracy() const { return trials ? double(correct) / trials : 0.0; }
};

struct NeedleEvalOptions {
  std::vector<int> lengths;
  std::vector<double> depths;  // percent
  int trials = 4;
  uint64_t seed = 999;  // evaluation documents (training uses other seeds)
  data::PasskeyOptions passkey;
  Layout layout = Layout::zigzag;
};

// Collective over the ring of `ring_size` ranks (this rank is ring_rank): every rank returns the
// same cells, ordered by length then depth. `reduce_counts` sums an int vector over the ring.
std::vector<NeedleCell> evaluate_needles(model::Transformer& model, const NeedleEvalOptions& options,
                                         int ring_size, int ring_rank,
                                         void (*reduce_counts)(std::vector<double>& values, void* context),
                                         void* context, void (*progress)(const std::string& line));

// "512,1K,2K" -> {512, 1024, 2048} (K = 1024); throws InputError.
std::vector<int> parse_lengths(const std::string& text);
std::vector<double> parse_depths(const std::string& text);

// Text heatmap: rows = depths, columns = lengths, accuracy per cell.
std::string needle_table(const std::vector<NeedleCell>& cells);

}  // namespace rw::infer
