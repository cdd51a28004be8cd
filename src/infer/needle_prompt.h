// needle_prompt.h: LWM's needle-in-a-haystack prompts for evaluation by generation
// (`eval needle --mode generate`), in any tokenizer. As LWM's scripts/eval_needle.py:
//   needle    "\nThe special magic {city} number is: {7-digit number}\n"
//   question  "What is the special magic {city} number?" (several asked, LWM's multi-needle form:
//             "What are the special magic numbers for A, B, and C?")
//   prompt    "You are a helpful assistant. USER: {context} {question} Don't give information
//             outside the document or repeat your findings. Keep your response short and direct.
//             ASSISTANT: " (one line; the tokenizer's BOS in front, as LWM's LLaMA tokenizer adds)
//   scoring   a needle is a hit when its number appears in the decoded answer (cut at EOS).
// The haystack (token ids of real text in this tokenizer, needle_haystack.h) is repeated when
// short and cut to the room the target length leaves; a needle goes at its depth, a percent of
// the haystack's tokens, moved back to just after the nearest token ending in '.' (LWM's
// sentence break; trailing whitespace aside, so a piece ". " counts; depth 100 is the very end;
// text without a period before the point keeps the exact point, where LWM would fall back to
// the start). Several needles are placed by depth on
// the same haystack. The whole prompt is then tokenized as one text, and the haystack's room is
// adjusted until the prompt has at most target_tokens tokens, as close as the tokenizer allows
// (exactly target_tokens for the byte tokenizer, whose token count is additive).
// Differences from LWM, on purpose: the target length counts the whole prompt in the model's
// own tokens (LWM cuts by another tokenizer's count and leaves a 200-token margin); needle 0 is
// at the requested depth and the other needles at random depths, needles 0..asked-1 are asked
// (LWM: every depth random, asked ones sampled); cities are distinct (LWM's list repeats some).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/data/tokenizer.h"

namespace rw::infer {

struct Needle {
  std::string city;
  std::string number;          // 7 decimal digits, the first not 0
  double depth_percent = 0;    // requested, 0-100
};

struct NeedleTask {
  std::vector<Needle> needles;
  int asked = 1;  // needles[0 .. asked) are asked, in that order
};

const std::vector<std::string>& needle_cities();  // the built-in list (distinct names)

// `n_needles` needles with distinct cities and 7-digit numbers; needle 0 at depth_percent, the
// others at uniform random depths in [0, 100]; needles 0..n_asked-1 asked. A function of
// (seed, index) only. InputError unless 1 <= n_asked <= n_needles <= needle_cities().size()
// and 0 <= depth_percent <= 100.
NeedleTask draw_needle_task(int n_needles, int n_asked, double depth_percent, uint64_t seed, uint64_t index);

std::string needle_text(const Needle& needle);
std::string needle_question(const NeedleTask& task);
std::string needle_prompt_text(const std::string& context, const std::string& question);  // LWM's template

struct NeedlePrompt {
  std::vector<int32_t> ids;            // the model's input: BOS (if the tokenizer has one) + the text's tokens
  std::string text;                    // the prompt text
  int64_t haystack_tokens = 0;         // haystack tokens in the context (needles aside)
  std::vector<int64_t> needle_at;      // per needle: haystack tokens before it
  std::vector<double> needle_depth_percent;  // per needle: 100 * needle_at / haystack_tokens
};

// The prompt for `task` with at most target_tokens ids. Throws InputError when the haystack is
// empty or target_tokens leaves no room for haystack text next to the template, question and
// needles (the message gives the smallest workable length).
NeedlePrompt build_needle_prompt(const NeedleTask& task, const std::vector<int32_t>& haystack,
                                 const data::Tokenizer& tokenizer, int64_t target_tokens);

// Per asked needle (in task order): whether its number appears in `answer`.
std::vector<bool> score_needle_answer(const NeedleTask& task, const std::string& answer);

}  // namespace rw::infer
