// needle_generate.cpp: see needle_generate.h.
#include "src/infer/needle_generate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "mpi/runtime.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/infer/needle_prompt.h"

namespace rw::infer {
namespace {

// Rank 0's greedy choice (the argmax, ties to the lowest id) on every rank, among the text
// columns (a vision model's rows hold the vision head's columns after them; the answers are
// text). Non-finite logits end the evaluation on every rank alike.
int32_t greedy_token(Generator& generator, const std::vector<float>& logits) {
  int32_t token = -1;
  const auto text_end = logits.begin() + generator.config().vocab_size;
  if (std::all_of(logits.begin(), text_end, [](float x) { return std::isfinite(x); }))
    token = static_cast<int32_t>(std::max_element(logits.begin(), text_end) - logits.begin());
  token = generator.agree_token(token);
  if (token < 0)
    throw std::runtime_error("the model's logits are not finite at step " + std::to_string(generator.length()) +
                             " of a generation (NaN or inf): its parameters are broken");
  return token;
}

void report_cell(NeedleProgress progress, const NeedleCell& cell, double seconds, int prompts) {
  if (!progress) return;
  char line[160];
  std::snprintf(line, sizeof line, "  length %6d depth %5.1f%%: %d/%d right (%d prompt(s), %.2f s)", cell.length,
                cell.depth, cell.correct, cell.trials, prompts, seconds);
  progress(line);
}

}  // namespace

std::vector<NeedleCell> generate_passkey_needles(Generator& generator, const NeedleEvalOptions& o,
                                                 std::vector<NeedleAnswer>* answers, NeedleProgress progress) {
  std::vector<NeedleCell> cells;
  for (int length : o.lengths)
    for (std::size_t d = 0; d < o.depths.size(); ++d) {
      const double t0 = wall_seconds();
      NeedleCell cell;
      cell.length = length;
      cell.depth = o.depths[d];
      cell.trials = o.trials;
      for (int t = 0; t < o.trials; ++t) {
        const data::PasskeyDocument doc = needle_passkey_document(o, length, static_cast<int>(d), t);
        // The prompt: everything before the first answer digit. The rest (answer digits and the
        // later questions, <eos> aside) is decoded token by token: digits by the model, the
        // questions' tokens as written.
        const int first = doc.answer_positions.front();
        const std::vector<int32_t> prompt(doc.tokens.begin(), doc.tokens.begin() + first);
        const int rest = length - 1 - first;
        std::vector<int32_t> generated;
        const std::vector<float>* logits = &generator.start(prompt, rest);
        std::size_t next_answer = 0;
        for (int i = 0; i < rest; ++i) {
          const int p = first + i;
          int32_t token = doc.tokens[static_cast<std::size_t>(p)];
          if (next_answer < doc.answer_positions.size() && doc.answer_positions[next_answer] == p) {
            token = greedy_token(generator, *logits);
            generated.push_back(token);
            ++next_answer;
          }
          if (i + 1 < rest) logits = &generator.append(token);
        }
        NeedleAnswer a = passkey_answer(doc, o.passkey, length, o.depths[d], t, generated);
        if (std::all_of(a.hits.begin(), a.hits.end(), [](bool h) { return h; })) ++cell.correct;
        if (answers) answers->push_back(std::move(a));
      }
      report_cell(progress, cell, wall_seconds() - t0, o.trials);
      cells.push_back(cell);
    }
  return cells;
}

uint64_t needle_task_index(int length, int depth_index, int trials, int trial) {
  return (static_cast<uint64_t>(length) << 24) + static_cast<uint64_t>(depth_index) * trials + trial;
}

std::vector<NeedleCell> generate_text_needles(Generator& generator, const NeedleTextOptions& o,
                                              const std::vector<int32_t>& haystack, const data::Tokenizer& tokenizer,
                                              std::vector<NeedleAnswer>* answers, NeedleProgress progress) {
  std::vector<NeedleCell> cells;
  for (int length : o.lengths)
    for (std::size_t d = 0; d < o.depths.size(); ++d) {
      const double t0 = wall_seconds();
      NeedleCell cell;
      cell.length = length;
      cell.depth = o.depths[d];
      cell.trials = o.trials * o.asked;
      for (int t = 0; t < o.trials; ++t) {
        // Every rank builds the same prompt; a failure is agreed before the next collective.
        NeedleTask task;
        NeedlePrompt prompt;
        std::string error;
        try {
          task = draw_needle_task(o.needles, o.asked, o.depths[d], o.seed,
                                  needle_task_index(length, static_cast<int>(d), o.trials, t));
          prompt = build_needle_prompt(task, haystack, tokenizer, length);
        } catch (const InputError& e) {
          error = e.what();
        }
        if (!(error = mpi::agree_on_error(error)).empty()) throw InputError(error);
        std::vector<int32_t> generated;
        const std::vector<float>* logits = &generator.start(prompt.ids, o.max_new_tokens);
        for (int64_t step = 0; step < o.max_new_tokens; ++step) {
          const int32_t token = greedy_token(generator, *logits);
          if (token == o.stop_token) break;
          generated.push_back(token);
          if (step + 1 < o.max_new_tokens) logits = &generator.append(token);
        }
        NeedleAnswer a;
        a.length = length;
        a.depth = o.depths[d];
        a.trial = t;
        a.prompt_tokens = static_cast<int64_t>(prompt.ids.size());
        const std::size_t tail = std::min<std::size_t>(prompt.ids.size(), NeedleAnswer::kTailTokens);
        a.prompt_tail = tokenizer.decode(std::vector<int32_t>(prompt.ids.end() - tail, prompt.ids.end()));
        for (std::size_t n = 0; n < task.needles.size(); ++n)
          a.needles.push_back({task.needles[n].city, task.needles[n].number, prompt.needle_depth_percent[n],
                               static_cast<int>(n) < task.asked});
        a.answer_tokens = generated;
        a.answer = tokenizer.decode(generated);
        a.hits = score_needle_answer(task, a.answer);
        cell.correct += static_cast<int>(std::count(a.hits.begin(), a.hits.end(), true));
        if (answers) answers->push_back(std::move(a));
      }
      report_cell(progress, cell, wall_seconds() - t0, o.trials);
      cells.push_back(cell);
    }
  return cells;
}

}  // namespace rw::infer
