// needle_report.h: the outputs of `ringworld eval needle` (both modes): the CSV of the cells
// (length,depth,trials,correct,accuracy), the PNG heatmap drawn by gnuplot from them, the
// --answers JSON lines (one per prompt) and the --show lines. Files are written atomically.
#pragma once
#include <string>
#include <vector>

#include "src/infer/needle_eval.h"

namespace rw::cli {

// Throws InputError naming the file when it cannot be written.
void write_needle_csv(const std::string& path, const std::vector<infer::NeedleCell>& cells);

// The heatmap of `cells` (x: lengths, y: depths, in the order given) as a PNG, when gnuplot is
// installed. Returns what happened, for the report ("wrote PATH", or why not).
std::string write_needle_png(const std::string& path, const std::vector<infer::NeedleCell>& cells,
                             const std::vector<int>& lengths, const std::vector<double>& depths,
                             const std::string& title);

// One JSON object per line per answer: mode, task, precision (the model's: --precision), length,
// depth, trial, prompt_tokens, needles (key and value named per task: name/digits for passkey,
// city/number for text), expected and answer tokens, the answer text, hits, hit (every asked
// needle found).
std::string needle_answers_jsonl(const std::vector<infer::NeedleAnswer>& answers, const std::string& mode,
                                 bool text_task, const std::string& precision = "fp32");

// The first `count` answers: the prompt's tail and the answer, a few lines each.
std::string needle_show_text(const std::vector<infer::NeedleAnswer>& answers, int count);

}  // namespace rw::cli
