// needle_generate.h: needle-in-a-haystack accuracy by generation (`eval needle --mode generate`):
// every prompt is prefilled on the ring and its answer decoded greedily by the Generator (KV
// cache sharded over the ring; generator.h), one prompt at a time (sequences are not batched).
//   Passkey task (passkey.h): each document of the (length, depth, trial) grid, the same ones
//     `--mode forced` scores (needle_eval.h), is cut right after its first question's
//     "<ask> NAME <is>"; the model generates the answer digits (argmax over the text
//     vocabulary, ties to the lowest id; a vision model's vision columns are not candidates); with several questions, the next question's
//     "<ask> NAME <is>" is fed after each answer. A document counts when every digit is right:
//     as in the forced mode, where every digit must be the argmax given the true prefix, and
//     the generated prefix is the true one for as long as the digits are right, so both modes
//     count the same documents.
//   LWM's text task (needle_prompt.h): needles in a haystack of the user's text, LWM's question
//     and prompt template, at most max_new_tokens decoded (stop at stop_token), a hit per asked
//     needle whose number appears in the decoded answer. A cell's trials are prompts x asked.
// Both are collective over the Generator's ring: every rank makes the same calls and returns
// the same cells (ordered by length, then depth) and answers (ordered by length, depth, trial).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/data/tokenizer.h"
#include "src/infer/generator.h"
#include "src/infer/needle_eval.h"

namespace rw::infer {

struct NeedleTextOptions {
  std::vector<int> lengths;    // prompt tokens at most (needle_prompt.h)
  std::vector<double> depths;  // percent
  int trials = 4;
  uint64_t seed = 999;
  int needles = 1, asked = 1;
  int64_t max_new_tokens = 32;
  int32_t stop_token = -1;  // -1: none
};

using NeedleProgress = void (*)(const std::string& line);

// Passkey documents of `options` (options.passkey.vocab_size the model's), the same documents as
// evaluate_needles. `answers` (when not null) gets one entry per document.
std::vector<NeedleCell> generate_passkey_needles(Generator& generator, const NeedleEvalOptions& options,
                                                 std::vector<NeedleAnswer>* answers, NeedleProgress progress);

// LWM's protocol on `haystack` (token ids of `tokenizer`, needle_haystack.h). A prompt that
// cannot be built (a length too short for the template) is an InputError on every rank.
std::vector<NeedleCell> generate_text_needles(Generator& generator, const NeedleTextOptions& options,
                                              const std::vector<int32_t>& haystack, const data::Tokenizer& tokenizer,
                                              std::vector<NeedleAnswer>* answers, NeedleProgress progress);

// The needles of a (length, depth, trial) of the text task: the task drawn for it.
uint64_t needle_task_index(int length, int depth_index, int trials, int trial);

}  // namespace rw::infer
