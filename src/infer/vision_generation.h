// vision_generation.h: images and videos from text (`generate --output-vision`), LWM's
// vision_generation.py: classifier-free guidance over two sequences decoded in lockstep.
//   cond:   the prompt ("...USER: Generate an image of {p} ASSISTANT: <vision>")
//   uncond: "<s><vision>" (nothing said about the picture)
// At every step both give their next-token logits (rows of text then vision columns); the code
// is sampled from the guided logits of the codebook's columns,
//   g = u + s (c - u)                   (s = cfg_scale; s = 1: c alone, s = 0: u alone)
// computed as (1 - s) u + s c in double, rounded to float: the same value up to rounding, and s = 1
// gives c, s = 0 gives u exactly, so those scales sample exactly what one sequence alone samples.
// The token structure is fixed, not sampled: a frame is codes_per_frame codes then <eof> (<eov>
// after the last frame), so every (codes_per_frame + 1)-th token is forced; a frame's codes are
// sampled among the codes [0, codebook_size) only (never <eof>, <eov> or a spare id). Each token,
// sampled or forced, is appended to both sequences. Rank 0 samples (Sampler: temperature, top-k,
// top-p, seed; its step counter advances on sampled tokens only) and every rank follows its
// choice (`agree`), so every rank makes the same calls in the same order.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "src/infer/generator.h"
#include "src/infer/sampling.h"
#include "src/vision/vision_sequence.h"

namespace rw::infer {

// out[i] = (1 - scale) uncond[i] + scale cond[i] (double, rounded to float), i < n. out may alias
// either input.
void guided_logits(const float* cond, const float* uncond, int64_t n, double scale, float* out);

// Tokens a generation of `frames` frames takes: frames x (codes_per_frame + 1).
int64_t vision_generation_tokens(int64_t frames, int64_t codes_per_frame);

// The token forced at generated position `step` (0-based): <eof> after each frame's codes, <eov>
// after the last frame's; -1 where a code is sampled.
int32_t forced_vision_token(const vision::VisionVocab& vocab, int64_t frames, int64_t codes_per_frame, int64_t step);

struct VisionGenerationOptions {
  int64_t frames = 1;
  int64_t codes_per_frame = 0;  // the VQGAN's s x s
  double cfg_scale = 5.0;       // LWM: images 5.0, video 1.0
  SamplingOptions sampling;     // LWM: temperature 1, top-k 8192 (images) or 1000 (video)
};

// LWM's defaults for an image (frames 1) or a video (frames > 1): scale, temperature 1, top-k.
VisionGenerationOptions lwm_vision_generation_defaults(int64_t frames, int64_t codes_per_frame);

// InputError naming the option: cfg_scale < 0 or not finite (--cfg-scale), frames < 1
// (--frames), codes_per_frame < 1, a vocabulary without room for the codes, <eof> and <eov>, or bad
// sampling options.
void validate_vision_generation(const VisionGenerationOptions& options, const vision::VisionVocab& vocab);

// One sequence's logits, as the Generator gives them (rows of vocab.total() floats).
class LogitsStream {
 public:
  virtual ~LogitsStream() = default;
  virtual const std::vector<float>& start(const std::vector<int32_t>& prompt, int64_t max_new_tokens) = 0;
  virtual const std::vector<float>& append(int32_t token) = 0;
};

class GeneratorStream final : public LogitsStream {
 public:
  explicit GeneratorStream(Generator& generator) : generator_(generator) {}
  const std::vector<float>& start(const std::vector<int32_t>& prompt, int64_t max_new_tokens) override {
    return generator_.start(prompt, max_new_tokens);
  }
  const std::vector<float>& append(int32_t token) override { return generator_.append(token); }

 private:
  Generator& generator_;
};

struct VisionGenerationResult {
  std::vector<int32_t> tokens;  // every generated id (codes as vocab.code_id, <eof>, <eov>)
  std::vector<int32_t> codes;   // frames x codes_per_frame codebook indices, frame after frame
};

// Collective when the streams are: runs both sequences to the end. `agree` returns rank 0's
// token on every rank (Generator::agree_token; -1 there means rank 0 could not sample), `samples`
// says whether this rank draws (rank 0). Throws std::runtime_error on every rank when the guided
// logits are not finite (NaN or inf) and InputError when the options are bad (validate first).
VisionGenerationResult generate_vision(LogitsStream& cond, LogitsStream& uncond, const std::vector<int32_t>& cond_prompt,
                                       const std::vector<int32_t>& uncond_prompt, const vision::VisionVocab& vocab,
                                       const VisionGenerationOptions& options, const std::function<int32_t(int32_t)>& agree,
                                       bool samples);

}  // namespace rw::infer
