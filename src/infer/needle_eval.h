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

// One (length, depth) cell: `trials` answers scored (passkey: documents, each counted when every
// digit of every question is right; text task: prompts x asked needles), `correct` of them right.
struct NeedleCell {
  int length = 0;
  double depth = 0;
  int trials = 0, correct = 0;
  double accuracy() const { return trials ? double(correct) / trials : 0.0; }
};

// One needle of a prompt, as placed.
struct NeedleSlot {
  std::string key;     // passkey: the name's word ("n3"); text: the city
  std::string value;   // passkey: the digits ("31459"); text: the 7-digit number
  double depth_percent = 0;  // where it went: passkey, its <key> token / length; text, needle_prompt.h
  bool asked = false;
};

// One prompt and its answer (for --answers and --show).
struct NeedleAnswer {
  int length = 0;
  double depth = 0;
  int trial = 0;
  int64_t prompt_tokens = 0;
  std::string prompt_tail;               // the prompt's last kTailTokens tokens as text
  std::vector<NeedleSlot> needles;
  std::vector<int32_t> expected_tokens;  // passkey: the answer digits' ids (every question); text: empty
  std::vector<int32_t> answer_tokens;    // generated (forced mode: the argmax at each answer digit)
  std::string answer;                    // answer_tokens as text
  std::vector<bool> hits;                // per asked needle
  static constexpr int kTailTokens = 20;
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
// same cells, ordered by length then depth. `reduce_counts` sums a vector over the ring.
// `answers` (when not null) gets one entry per document (ordered by length, depth, trial) with
// the argmax at each answer digit given the true prefix.
std::vector<NeedleCell> evaluate_needles(model::Transformer& model, const NeedleEvalOptions& options,
                                         int ring_size, int ring_rank,
                                         void (*reduce_counts)(std::vector<double>& values, void* context),
                                         void* context, void (*progress)(const std::string& line),
                                         std::vector<NeedleAnswer>* answers = nullptr);

// The passkey document of (length, depth_index, trial): the same in both modes.
data::PasskeyDocument needle_passkey_document(const NeedleEvalOptions& options, int length, int depth_index, int trial);

// The answer record of a passkey document given the model's tokens at its answer digits (one
// per digit of every question, in order): hits per question (every digit right), the prompt's
// tail up to the first answer digit and the answer in the passkey tokenizer's words.
NeedleAnswer passkey_answer(const data::PasskeyDocument& doc, const data::PasskeyOptions& passkey, int length,
                            double depth, int trial, const std::vector<int32_t>& answer_tokens);

// "512,1K,2K" -> {512, 1024, 2048} (K = 1024); throws InputError.
std::vector<int> parse_lengths(const std::string& text);
std::vector<double> parse_depths(const std::string& text);

// Text heatmap: rows = depths, columns = lengths, accuracy per cell.
std::string needle_table(const std::vector<NeedleCell>& cells);

}  // namespace rw::infer
