// visual_needle.h: `ringworld eval visual-needle`: the vision demo's question answered by a
// vision-language model (LlamaConfig::vision_vocab_size > 0) over long videos. For each (video
// length in frames, needle depth, trial) a synthetic video (synthetic_video.h) hides its needle
// frame at that depth; its frames are encoded by the VQGAN (the one the training data was made
// with) and laid out as `prepare --vision` lays out a caption-order example (vision_sequence.h:
// "<vision>", per frame its codes then <eof>, <eov> after the last, "</vision>"), followed by
// the question's text (visual_needle_question). The model answers greedily: each next token is
// the argmax of the TEXT columns of the logits (the first text_vocab; ties to the lowest id),
// at most max_new_tokens, stopping after a token whose text holds a '.'. An answer is right
// when it names the needle's colour (visual_needle_hit). Chance: 1 / kNeedleColours.
// Videos: seeded by (seed, frames, depth index, trial); evaluation seeds differ from training
// (`vqgan demo-data` draws its videos with draw_video_spec from its own seed).
// Collective over the Generator's ring: every rank makes the same calls (each encodes the same
// frames itself: the demo's VQGAN is tiny) and returns the same cells and answers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/data/tokenizer.h"
#include "src/infer/generator.h"
#include "src/vision/frame_encoder.h"
#include "src/vision/synthetic_video.h"
#include "src/vision/vision_sequence.h"

namespace rw::infer {

struct VisualNeedleOptions {
  std::vector<int64_t> frames;  // video lengths
  std::vector<double> depths;   // percent: 0 the first frame (farthest back), 100 the last
  int trials = 10;
  uint64_t seed = 999;
  int64_t max_new_tokens = 10;
};

struct VisualNeedleCell {
  int64_t frames = 0;
  int64_t prompt_tokens = 0;  // the longest prompt of the cell
  double depth = 0;
  int trials = 0, correct = 0;
  double accuracy() const { return trials ? double(correct) / trials : 0.0; }
};

struct VisualNeedleAnswer {
  int64_t frames = 0, needle_frame = 0, prompt_tokens = 0;
  double depth = 0;
  int trial = 0, colour = 0;
  std::string answer;
  bool hit = false;
};

// The video of one (frames, depth index, trial) of the evaluation.
vision::SyntheticVideoSpec visual_needle_video(const VisualNeedleOptions& options, int64_t frame_size, int64_t frames,
                                               int depth_index, int trial);

// The prompt: the vision block of `codes` (frames x codes_per_frame), then tokenize(question).
std::vector<int32_t> visual_needle_prompt(const vision::VisionVocab& vocab, const vision::VisionMarkers& markers,
                                          const std::vector<int32_t>& codes, int64_t codes_per_frame,
                                          const data::Tokenizer& tokenizer);

// The argmax of logits[0, text_vocab) (ties to the lowest id).
int32_t greedy_text_token(const std::vector<float>& logits, int64_t text_vocab);

using VisualNeedleProgress = void (*)(const std::string& line);

// Cells ordered by frames, then depth. `answers` (when not null): one per prompt.
std::vector<VisualNeedleCell> evaluate_visual_needles(Generator& generator, vision::FrameEncoder& encoder,
                                                      const vision::VisionVocab& vocab,
                                                      const vision::VisionMarkers& markers,
                                                      const data::Tokenizer& tokenizer,
                                                      const VisualNeedleOptions& options,
                                                      std::vector<VisualNeedleAnswer>* answers,
                                                      VisualNeedleProgress progress);

// The accuracy table (rows: depths, columns: video lengths with their prompt tokens), and the
// CSV: frames,prompt_tokens,depth,trials,correct,accuracy (one line per cell, a header first).
std::string visual_needle_table(const std::vector<VisualNeedleCell>& cells);
std::string visual_needle_csv(const std::vector<VisualNeedleCell>& cells);
// One JSON object per line per answer; `precision` is the model's (--precision), recorded on each.
std::string visual_needle_answers_jsonl(const std::vector<VisualNeedleAnswer>& answers,
                                        const std::string& precision = "fp32");

}  // namespace rw::infer
