// test_vision_generation.cpp: vision out (src/infer/vision_generation.h) and vision in the chat
// template (src/infer/chat_template.h), without MPI: the sequences are fake models whose logits
// are a hash of (model, every token so far, column), so any wrong order, a token appended to one
// sequence only, or a wrong column shows as other tokens. (The real model on the ring: tests/mpi/
// test_generation.cpp.) Milliseconds.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "src/common/input_error.h"
#include "src/data/tokenizer.h"
#include "src/infer/chat_template.h"
#include "src/infer/generator.h"
#include "src/infer/vision_generation.h"
#include "src/vision/vision_sequence.h"

using namespace rw;

namespace {

// A model that is a hash: logits in [-4, 4) from (salt, the sequence so far, column).
class HashStream : public infer::LogitsStream {
 public:
  HashStream(uint64_t salt, int64_t width) : salt_(salt), width_(width) {}
  const std::vector<float>& start(const std::vector<int32_t>& prompt, int64_t max_new_tokens) override {
    sequence = prompt;
    max_new = max_new_tokens;
    appended.clear();
    return row();
  }
  const std::vector<float>& append(int32_t token) override {
    sequence.push_back(token);
    appended.push_back(token);
    return row();
  }
  std::vector<int32_t> sequence, appended;
  int64_t max_new = 0;
  bool poison = false;  // NaN in a code's column of every row

 private:
  const std::vector<float>& row() {
    uint64_t h = infer::detail::splitmix64(salt_);
    for (int32_t t : sequence) h = infer::detail::splitmix64(h ^ static_cast<uint64_t>(t));
    logits_.resize(static_cast<std::size_t>(width_));
    for (int64_t i = 0; i < width_; ++i)
      logits_[i] = static_cast<float>(8.0 * (infer::detail::splitmix64(h + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53 - 4.0);
    if (poison) logits_[12] = std::numeric_limits<float>::quiet_NaN();  // code 2's column
    return logits_;
  }
  uint64_t salt_;
  int64_t width_;
  std::vector<float> logits_;
};

const vision::VisionVocab kVocab{10, 6, 9};  // text 0..9, codes 10..15, <eof> 16, <eov> 17, spare 18

int32_t same_token(int32_t t) { return t; }

infer::VisionGenerationOptions options(int64_t frames, double scale) {
  infer::VisionGenerationOptions o;
  o.frames = frames;
  o.codes_per_frame = 4;
  o.cfg_scale = scale;
  o.sampling.temperature = 1.0;
  o.sampling.seed = 17;
  return o;
}

// One sequence alone, the token structure forced, codes sampled from its code columns: what
// guidance must reduce to at s = 1 (the prompt's sequence) and s = 0 (the unconditional one).
std::vector<int32_t> one_sequence(HashStream& s, const std::vector<int32_t>& prompt, const infer::VisionGenerationOptions& o) {
  const int64_t total = infer::vision_generation_tokens(o.frames, o.codes_per_frame);
  infer::Sampler sampler(o.sampling);
  const std::vector<float>* logits = &s.start(prompt, total);
  std::vector<int32_t> tokens;
  for (int64_t step = 0; step < total; ++step) {
    int32_t t = infer::forced_vision_token(kVocab, o.frames, o.codes_per_frame, step);
    if (t < 0) t = kVocab.code_id(sampler.next(logits->data() + kVocab.text_vocab, kVocab.codebook_size));
    tokens.push_back(t);
    if (step + 1 < total) logits = &s.append(t);
  }
  return tokens;
}

}  // namespace

TEST_CASE("guided logits are u + s (c - u), exactly c at s = 1 and u at s = 0", "[vision_generation]") {
  std::vector<float> c(257), u(257), g(257);
  for (std::size_t i = 0; i < c.size(); ++i) {
    c[i] = static_cast<float>(std::sin(0.37 * i) * 9.0);
    u[i] = static_cast<float>(std::cos(1.3 * i) * 7.0);
  }
  u[3] = 1.f;  // c - u rounds to -u: u + (c - u) is 0 at s = 1; the (1 - s) u + s c form returns c
  c[3] = 1e-30f;
  for (double s : {0.0, 0.25, 1.0, 1.7, 5.0}) {
    infer::guided_logits(c.data(), u.data(), 257, s, g.data());
    for (std::size_t i = 0; i < c.size(); ++i) {
      const double direct = static_cast<double>(u[i]) + s * (static_cast<double>(c[i]) - static_cast<double>(u[i]));
      // One rounding to float (2^-24 relative) of a double computation whose own error is
      // ~1e-16 of the terms' size: 1e-6 of (|u| + s |c|) + 1e-30 bounds both with margin.
      CHECK(std::abs(g[i] - direct) <= 1e-6 * (std::abs(u[i]) + s * std::abs(c[i])) + 1e-30);
    }
    if (s == 1.0) CHECK(g == c);
    if (s == 0.0) CHECK(g == u);
  }
}

TEST_CASE("the token structure: codes, then <eof> after each frame and <eov> after the last", "[vision_generation]") {
  CHECK(infer::vision_generation_tokens(3, 4) == 15);
  CHECK(infer::vision_generation_tokens(1, 256) == 257);  // LWM's 257 tokens per frame
  for (int64_t step = 0; step < 15; ++step) {
    const int32_t t = infer::forced_vision_token(kVocab, 3, 4, step);
    if (step == 4 || step == 9) CHECK(t == kVocab.eof_id());
    else if (step == 14) CHECK(t == kVocab.eov_id());
    else CHECK(t == -1);
  }
  CHECK(infer::forced_vision_token(kVocab, 1, 4, 4) == kVocab.eov_id());  // an image: <eov> only
}

TEST_CASE("guided generation: structure, both sequences fed every token, s = 1 and s = 0 one sequence", "[vision_generation]") {
  const std::vector<int32_t> cond_prompt = {1, 4, 2, 7}, uncond_prompt = {1, 7};
  const int64_t width = kVocab.total();
  for (int64_t frames : {1, 3}) {
    INFO(frames << " frame(s)");
    HashStream c(1, width), u(2, width);
    const infer::VisionGenerationOptions o = options(frames, 3.0);
    const infer::VisionGenerationResult r = infer::generate_vision(c, u, cond_prompt, uncond_prompt, kVocab, o, same_token, true);
    const int64_t total = frames * 5;
    REQUIRE(static_cast<int64_t>(r.tokens.size()) == total);
    REQUIRE(static_cast<int64_t>(r.codes.size()) == frames * 4);
    std::size_t code = 0;
    for (int64_t step = 0; step < total; ++step) {
      const int32_t t = r.tokens[static_cast<std::size_t>(step)];
      if (step % 5 == 4) {
        CHECK(t == (step == total - 1 ? kVocab.eov_id() : kVocab.eof_id()));
      } else {
        CHECK((t >= kVocab.code_id(0) && t < kVocab.code_id(0) + kVocab.codebook_size));
        CHECK(r.codes[code++] == t - kVocab.text_vocab);
      }
    }
    // Both sequences started with room for every token and got every token but the last.
    CHECK(c.max_new == total);
    CHECK(u.max_new == total);
    const std::vector<int32_t> fed(r.tokens.begin(), r.tokens.end() - 1);
    CHECK(c.appended == fed);
    CHECK(u.appended == fed);
    // s = 1: the prompt's sequence alone; s = 0: the unconditional one alone.
    HashStream c1(1, width), u1(2, width), ref(1, width);
    CHECK(infer::generate_vision(c1, u1, cond_prompt, uncond_prompt, kVocab, options(frames, 1.0), same_token, true).tokens ==
          one_sequence(ref, cond_prompt, options(frames, 1.0)));
    HashStream c0(1, width), u0(2, width), ref0(2, width);
    CHECK(infer::generate_vision(c0, u0, cond_prompt, uncond_prompt, kVocab, options(frames, 0.0), same_token, true).tokens ==
          one_sequence(ref0, uncond_prompt, options(frames, 0.0)));
    // Any scale: each code drawn from u + s (c - u) (computed directly, in double) of the two
    // sequences' code columns, both sequences fed the same tokens.
    HashStream cr(1, width), ur(2, width);
    infer::Sampler sampler(o.sampling);
    const std::vector<float>* cl = &cr.start(cond_prompt, total);
    const std::vector<float>* ul = &ur.start(uncond_prompt, total);
    std::vector<int32_t> direct;
    for (int64_t step = 0; step < total; ++step) {
      int32_t t = infer::forced_vision_token(kVocab, frames, 4, step);
      if (t < 0) {
        std::vector<float> g(static_cast<std::size_t>(kVocab.codebook_size));
        for (int64_t i = 0; i < kVocab.codebook_size; ++i) {
          const double cv = (*cl)[kVocab.text_vocab + i], uv = (*ul)[kVocab.text_vocab + i];
          g[i] = static_cast<float>(uv + o.cfg_scale * (cv - uv));
        }
        t = kVocab.code_id(sampler.next(g.data(), kVocab.codebook_size));
      }
      direct.push_back(t);
      if (step + 1 < total) {
        cl = &cr.append(t);
        ul = &ur.append(t);
      }
    }
    CHECK(r.tokens == direct);
  }
}

TEST_CASE("guided generation follows rank 0's choice and refuses bad options and broken logits", "[vision_generation]") {
  const int64_t width = kVocab.total();
  HashStream c(1, width), u(2, width);
  // A rank that does not sample takes what `agree` hands it (rank 0's code).
  const infer::VisionGenerationResult r =
      infer::generate_vision(c, u, {1}, {1}, kVocab, options(2, 2.0), [](int32_t) { return 5; }, false);
  CHECK(r.codes == std::vector<int32_t>(8, 5));
  CHECK_THROWS_WITH(infer::generate_vision(c, u, {1}, {1}, kVocab, options(1, -0.5), same_token, true),
                    Catch::Contains("--cfg-scale must be a finite number >= 0"));
  CHECK_THROWS_AS(infer::generate_vision(c, u, {1}, {1}, kVocab, options(0, 1.0), same_token, true), InputError);
  CHECK_THROWS_AS(infer::generate_vision(c, u, {1}, {1}, vision::VisionVocab{10, 8, 9}, options(1, 1.0), same_token, true),
                  InputError);  // 8 codes, <eof>, <eov> do not fit 9 vision ids
  HashStream bad(3, width);
  bad.poison = true;
  CHECK_THROWS_WITH(infer::generate_vision(bad, u, {1}, {1}, kVocab, options(1, 2.0), same_token, true),
                    Catch::Contains("not finite"));
  // LWM's defaults.
  CHECK(infer::lwm_vision_generation_defaults(1, 256).cfg_scale == 5.0);
  CHECK(infer::lwm_vision_generation_defaults(1, 256).sampling.top_k == 8192);
  CHECK(infer::lwm_vision_generation_defaults(8, 256).cfg_scale == 1.0);
  CHECK(infer::lwm_vision_generation_defaults(8, 256).sampling.top_k == 1000);
  CHECK(infer::lwm_vision_generation_defaults(8, 256).sampling.temperature == 1.0);
}

namespace {
struct LlamaLikeBytes : data::ByteTokenizer {
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
};
std::vector<int32_t> cat(std::vector<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
}  // namespace

TEST_CASE("vision in the chat template: LWM's vision chat and the training sequence's order", "[vision_generation][chat]") {
  const LlamaLikeBytes tok;
  const vision::VisionVocab vocab{256, 6, 9};
  const vision::VisionMarkers markers = infer::vision_markers(tok);
  CHECK(markers.begin == tok.encode("<vision>"));
  CHECK(markers.end == tok.encode("</vision>"));
  const std::vector<int32_t> block = vision::vision_block(vocab, markers, {0, 5, 3, 2, 1, 4}, 3);  // 2 frames
  // lwm: BOS "You are a helpful assistant. USER: {q}\n" block " ASSISTANT:" (LWM's vision_chat.py).
  const infer::ChatPrompt p = infer::apply_vision_chat_template("lwm", "What moves?", block, tok);
  CHECK(p.ids == cat({{1}, tok.encode("You are a helpful assistant. USER: What moves?\n"), block, tok.encode(" ASSISTANT:")}));
  CHECK(p.stop_token == 2);
  // none: the caption order `prepare --vision` trains (vision, then text): the same tokens as
  // vision_text_sequence's, without BOS and EOS.
  const data::ByteTokenizer bytes;
  const infer::ChatPrompt n = infer::apply_vision_chat_template("none", "a cat", block, bytes);
  vision::VisionTextExample ex;
  ex.blocks = {{0, 5, 3, 2, 1, 4}};
  ex.codes_per_frame = 3;
  ex.text = bytes.encode("a cat");
  CHECK(n.ids == vision::vision_text_sequence(vocab, infer::vision_markers(bytes), ex).tokens);
  CHECK_THROWS_AS(infer::apply_vision_chat_template("llama3", "q", block, tok), InputError);
  // Generation: LWM's conditional and unconditional prompts (vision_generation.py).
  const infer::VisionGenerationPrompts g = infer::vision_generation_prompts("lwm", "a red ball", false, tok);
  CHECK(g.cond == cat({{1}, tok.encode("You are a helpful assistant. USER: Generate an image of a red ball ASSISTANT: <vision>")}));
  CHECK(g.uncond == cat({{1}, tok.encode("<vision>")}));
  CHECK(infer::vision_generation_prompts("lwm", "waves", true, tok).cond ==
        cat({{1}, tok.encode("You are a helpful assistant. USER: Generate a video of waves ASSISTANT: <vision>")}));
  // none: the generate order (text, then the block's opening marker), as `prepare --vision` trains.
  const infer::VisionGenerationPrompts gn = infer::vision_generation_prompts("none", "a ball", false, bytes);
  CHECK(gn.cond == cat({bytes.encode("a ball"), bytes.encode("<vision>")}));
  CHECK(gn.uncond == bytes.encode("<vision>"));
}
