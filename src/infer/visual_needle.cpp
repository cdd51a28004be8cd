// visual_needle.cpp: see visual_needle.h.
#include "src/infer/visual_needle.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "src/common/input_error.h"
#include "src/vision/frame_preprocess.h"

namespace rw::infer {

vision::SyntheticVideoSpec visual_needle_video(const VisualNeedleOptions& options, int64_t frame_size, int64_t frames,
                                               int depth_index, int trial) {
  if (depth_index < 0 || depth_index >= static_cast<int>(options.depths.size()))
    throw InputError("visual needle: depth index out of range");
  // Its own stream per cell and trial: draw_video_spec's colour and seed, the needle placed at
  // the depth. The index mixes (frames, depth, trial) so that no two prompts share a video.
  const int64_t index = (frames * 1009 + depth_index) * 100003 + trial;
  vision::SyntheticVideoSpec spec = vision::draw_video_spec(options.seed ^ 0x76697375616cULL, index, frames, frames, frame_size);
  spec.needle_frame = vision::needle_frame_at_depth(frames, options.depths[static_cast<std::size_t>(depth_index)]);
  return spec;
}

std::vector<int32_t> visual_needle_prompt(const vision::VisionVocab& vocab, const vision::VisionMarkers& markers,
                                          const std::vector<int32_t>& codes, int64_t codes_per_frame,
                                          const data::Tokenizer& tokenizer) {
  vision::VisionTextExample example;
  example.blocks.push_back(codes);
  example.codes_per_frame = codes_per_frame;
  example.text = tokenizer.encode(vision::visual_needle_question());
  example.order = vision::VisionOrder::caption;
  std::vector<int32_t> tokens = vision::vision_text_sequence(vocab, markers, example).tokens;
  if (markers.eos >= 0 && !tokens.empty() && tokens.back() == markers.eos) tokens.pop_back();  // the answer follows
  return tokens;
}

int32_t greedy_text_token(const std::vector<float>& logits, int64_t text_vocab) {
  if (text_vocab < 1 || static_cast<int64_t>(logits.size()) < text_vocab)
    throw InputError("greedy_text_token: " + std::to_string(logits.size()) + " logits for a text vocabulary of " +
                     std::to_string(text_vocab));
  int32_t best = 0;
  for (int64_t i = 1; i < text_vocab; ++i)
    if (logits[static_cast<std::size_t>(i)] > logits[static_cast<std::size_t>(best)]) best = static_cast<int32_t>(i);
  if (!std::isfinite(logits[static_cast<std::size_t>(best)])) throw InputError("the model's logits are not finite");
  return best;
}

std::vector<VisualNeedleCell> evaluate_visual_needles(Generator& generator, vision::FrameEncoder& encoder,
                                                      const vision::VisionVocab& vocab,
                                                      const vision::VisionMarkers& markers,
                                                      const data::Tokenizer& tokenizer,
                                                      const VisualNeedleOptions& options,
                                                      std::vector<VisualNeedleAnswer>* answers,
                                                      VisualNeedleProgress progress) {
  const int64_t S = encoder.config().image_size, per_frame = encoder.codes_per_frame();
  std::vector<VisualNeedleCell> cells;
  for (int64_t frames : options.frames) {
    for (std::size_t di = 0; di < options.depths.size(); ++di) {
      VisualNeedleCell cell;
      cell.frames = frames;
      cell.depth = options.depths[di];
      for (int trial = 0; trial < options.trials; ++trial) {
        const vision::SyntheticVideoSpec spec = visual_needle_video(options, S, frames, static_cast<int>(di), trial);
        const vision::SyntheticVideo video = vision::make_synthetic_video(spec);
        std::vector<float> input;
        input.reserve(static_cast<std::size_t>(frames * encoder.frame_floats()));
        for (int64_t f = 0; f < frames; ++f) {
          const std::vector<float> one = vision::lwm_frame(video.frame(f), S, S, S);
          input.insert(input.end(), one.begin(), one.end());
        }
        const std::vector<int32_t> codes = encoder.encode(input.data(), frames);
        const std::vector<int32_t> prompt = visual_needle_prompt(vocab, markers, codes, per_frame, tokenizer);
        std::vector<int32_t> out;
        const std::vector<float>* logits = &generator.start(prompt, options.max_new_tokens);
        for (int64_t step = 0; step < options.max_new_tokens; ++step) {
          const int32_t token = generator.agree_token(greedy_text_token(*logits, vocab.text_vocab));
          out.push_back(token);
          if (tokenizer.decode({token}).find('.') != std::string::npos || step + 1 == options.max_new_tokens) break;
          logits = &generator.append(token);
        }
        VisualNeedleAnswer a;
        a.frames = frames;
        a.needle_frame = spec.needle_frame;
        a.prompt_tokens = static_cast<int64_t>(prompt.size());
        a.depth = cell.depth;
        a.trial = trial;
        a.colour = spec.colour;
        a.answer = tokenizer.decode(out);
        a.hit = vision::visual_needle_hit(a.answer, spec.colour);
        cell.prompt_tokens = std::max(cell.prompt_tokens, a.prompt_tokens);
        ++cell.trials;
        cell.correct += a.hit ? 1 : 0;
        if (answers) answers->push_back(a);
      }
      if (progress) {
        char line[160];
        std::snprintf(line, sizeof line, "  %lld frames (%lld tokens), needle at %g%%: %d of %d right",
                      static_cast<long long>(frames), static_cast<long long>(cell.prompt_tokens), cell.depth, cell.correct,
                      cell.trials);
        progress(line);
      }
      cells.push_back(cell);
    }
  }
  return cells;
}

std::string visual_needle_table(const std::vector<VisualNeedleCell>& cells) {
  std::vector<int64_t> frames;
  std::vector<double> depths;
  for (const VisualNeedleCell& c : cells) {
    if (std::find(frames.begin(), frames.end(), c.frames) == frames.end()) frames.push_back(c.frames);
    if (std::find(depths.begin(), depths.end(), c.depth) == depths.end()) depths.push_back(c.depth);
  }
  std::ostringstream out;
  char buf[64];
  out << "  depth \\ frames";
  for (int64_t f : frames) {
    std::snprintf(buf, sizeof buf, " %9lld", static_cast<long long>(f));
    out << buf;
  }
  out << "\n  (prompt tokens)";
  for (int64_t f : frames) {
    int64_t tokens = 0;
    for (const VisualNeedleCell& c : cells)
      if (c.frames == f) tokens = std::max(tokens, c.prompt_tokens);
    std::snprintf(buf, sizeof buf, " %9lld", static_cast<long long>(tokens));
    out << buf;
  }
  out << "\n";
  for (double d : depths) {
    std::snprintf(buf, sizeof buf, "  %13g%%", d);
    out << buf;
    for (int64_t f : frames) {
      const VisualNeedleCell* hit = nullptr;
      for (const VisualNeedleCell& c : cells)
        if (c.frames == f && c.depth == d) hit = &c;
      if (hit) std::snprintf(buf, sizeof buf, " %9.2f", hit->accuracy());
      else std::snprintf(buf, sizeof buf, " %9s", "-");
      out << buf;
    }
    out << "\n";
  }
  return out.str();
}

std::string visual_needle_csv(const std::vector<VisualNeedleCell>& cells) {
  std::ostringstream out;
  out << "frames,prompt_tokens,depth,trials,correct,accuracy\n";
  char buf[160];
  for (const VisualNeedleCell& c : cells) {
    std::snprintf(buf, sizeof buf, "%lld,%lld,%g,%d,%d,%.4f\n", static_cast<long long>(c.frames),
                  static_cast<long long>(c.prompt_tokens), c.depth, c.trials, c.correct, c.accuracy());
    out << buf;
  }
  return out.str();
}

std::string visual_needle_answers_jsonl(const std::vector<VisualNeedleAnswer>& answers, const std::string& precision) {
  std::string out;
  for (const VisualNeedleAnswer& a : answers) {
    nlohmann::json j = {{"precision", precision},
                        {"frames", a.frames},
                        {"depth", a.depth},
                        {"trial", a.trial},
                        {"needle_frame", a.needle_frame},
                        {"prompt_tokens", a.prompt_tokens},
                        {"colour", vision::needle_colour_name(a.colour)},
                        {"answer", a.answer},
                        {"hit", a.hit}};
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  return out;
}

}  // namespace rw::infer
