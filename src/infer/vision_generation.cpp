// vision_generation.cpp: see vision_generation.h.
#include "src/infer/vision_generation.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::infer {

void guided_logits(const float* cond, const float* uncond, int64_t n, double scale, float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>((1.0 - scale) * static_cast<double>(uncond[i]) + scale * static_cast<double>(cond[i]));
}

int64_t vision_generation_tokens(int64_t frames, int64_t codes_per_frame) { return frames * (codes_per_frame + 1); }

int32_t forced_vision_token(const vision::VisionVocab& vocab, int64_t frames, int64_t codes_per_frame, int64_t step) {
  RW_CHECK(codes_per_frame >= 1 && step >= 0 && step < vision_generation_tokens(frames, codes_per_frame),
           "forced_vision_token: step out of the generation");
  if (step % (codes_per_frame + 1) != codes_per_frame) return -1;
  return step / (codes_per_frame + 1) + 1 == frames ? vocab.eov_id() : vocab.eof_id();
}

VisionGenerationOptions lwm_vision_generation_defaults(int64_t frames, int64_t codes_per_frame) {
  VisionGenerationOptions o;
  o.frames = frames;
  o.codes_per_frame = codes_per_frame;
  o.cfg_scale = frames > 1 ? 1.0 : 5.0;
  o.sampling.temperature = 1.0;
  o.sampling.top_k = frames > 1 ? 1000 : 8192;
  return o;
}

void validate_vision_generation(const VisionGenerationOptions& o, const vision::VisionVocab& vocab) {
  if (!(std::isfinite(o.cfg_scale) && o.cfg_scale >= 0))
    throw InputError("--cfg-scale must be a finite number >= 0 (1: the prompt alone, 0: no prompt), got " +
                     std::to_string(o.cfg_scale));
  if (o.frames < 1) throw InputError("--frames must be >= 1, got " + std::to_string(o.frames));
  if (o.codes_per_frame < 1) throw InputError("a frame needs at least one code");
  vision::check_vision_vocab(vocab);
  validate_sampling_options(o.sampling);
}

VisionGenerationResult generate_vision(LogitsStream& cond, LogitsStream& uncond, const std::vector<int32_t>& cond_prompt,
                                       const std::vector<int32_t>& uncond_prompt, const vision::VisionVocab& vocab,
                                       const VisionGenerationOptions& o, const std::function<int32_t(int32_t)>& agree,
                                       bool samples) {
  validate_vision_generation(o, vocab);
  const int64_t total = vision_generation_tokens(o.frames, o.codes_per_frame);
  const int64_t codes_at = vocab.text_vocab;  // the first code's column in a row of logits
  Sampler sampler(o.sampling);
  std::vector<float> guided(static_cast<std::size_t>(vocab.codebook_size));
  // Both sequences in the same order on every rank: cond first, then uncond.
  const std::vector<float>* c = &cond.start(cond_prompt, total);
  const std::vector<float>* u = &uncond.start(uncond_prompt, total);
  RW_CHECK(static_cast<int64_t>(c->size()) >= vocab.total() && static_cast<int64_t>(u->size()) >= vocab.total(),
           "generate_vision: the model's rows are narrower than the vocabulary");
  VisionGenerationResult result;
  result.codes.reserve(static_cast<std::size_t>(o.frames * o.codes_per_frame));
  for (int64_t step = 0; step < total; ++step) {
    int32_t token = forced_vision_token(vocab, o.frames, o.codes_per_frame, step);
    if (token < 0) {
      int32_t code = 0;
      if (samples) {
        guided_logits(c->data() + codes_at, u->data() + codes_at, vocab.codebook_size, o.cfg_scale, guided.data());
        try {
          code = sampler.next(guided.data(), vocab.codebook_size);
        } catch (const NonFiniteLogits&) {
          code = -1;
        }
      }
      code = agree(code);
      if (code < 0)
        throw std::runtime_error("the guided logits of vision token " + std::to_string(step) +
                                 " are not finite (NaN or inf): the model's numbers broke down");
      RW_CHECK(code < vocab.codebook_size, "generate_vision: a code outside the codebook");
      result.codes.push_back(code);
      token = vocab.code_id(code);
    }
    result.tokens.push_back(token);
    if (step + 1 < total) {
      c = &cond.append(token);
      u = &uncond.append(token);
    }
  }
  return result;
}

}  // namespace rw::infer
