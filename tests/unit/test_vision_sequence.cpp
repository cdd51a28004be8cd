// test_vision_sequence.cpp: the vision-language token layout (src/vision/vision_sequence.h) at
// LWM's sizes (text 32000, codebook 8192, vision 8448): 257 tokens per frame, <eof> between
// frames and <eov> after the last, the "<vision>"/"</vision>" pieces around each block, both
// orders with LWM's loss mask (condition 0, the rest and EOS 1, BOS 0), the vision mask implied
// by the id (>= text vocabulary) covering exactly codes, <eof> and <eov>; LWM's uniform frame
// choice (np.linspace(...).astype(int)); prepare --vision's .jsonl records (src/data/
// vision_record.h) and their errors. The expected sequences are assembled here token by
// token from the rules, not by the functions under test. Milliseconds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "src/data/vision_record.h"
#include "src/vision/vision_sequence.h"
#include "tests/input_error_check.h"

using namespace rw;
using namespace rw::vision;

namespace {

VisionVocab lwm_vocab() {
  VisionVocab v;
  v.text_vocab = 32000;
  v.codebook_size = 8192;
  v.vision_vocab = 8448;
  return v;
}

// Arbitrary but distinct pieces: what a SentencePiece model makes of "<vision>" is several ids.
VisionMarkers markers(bool special) {
  VisionMarkers m;
  m.begin = {529, 4924, 29958};
  m.end = {1533, 4924, 29958};
  if (special) {
    m.bos = 1;
    m.eos = 2;
  }
  return m;
}

std::vector<int32_t> frame_codes(int frames, int seed) {
  std::vector<int32_t> codes(static_cast<std::size_t>(frames) * 256);
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<int32_t>((i * 2654435761u + seed) % 8192);
  return codes;
}

}  // namespace

TEST_CASE("vision block: 257 tokens per frame, <eof> between frames, <eov> last, text pieces around", "[vision]") {
  const VisionVocab v = lwm_vocab();
  const VisionMarkers m = markers(false);
  CHECK(default_vision_vocab(8192) == 8448);  // LWM's vte size
  CHECK(v.eof_id() == 32000 + 8192);
  CHECK(v.eov_id() == 32000 + 8193);
  for (int frames : {1, 3}) {
    const std::vector<int32_t> codes = frame_codes(frames, 5);
    const std::vector<int32_t> block = vision_block(v, m, codes, 256);
    REQUIRE(block.size() == m.begin.size() + 257u * frames + m.end.size());
    std::vector<int32_t> want(m.begin);
    for (int f = 0; f < frames; ++f) {
      for (int i = 0; i < 256; ++i) want.push_back(32000 + codes[static_cast<std::size_t>(f * 256 + i)]);
      want.push_back(f == frames - 1 ? 32000 + 8193 : 32000 + 8192);
    }
    want.insert(want.end(), m.end.begin(), m.end.end());
    CHECK(block == want);
    // The vision mask (id >= text vocabulary) is exactly the codes and the frame ends.
    const auto vision = std::count_if(block.begin(), block.end(), [&](int32_t id) { return v.is_vision(id); });
    CHECK(vision == 257 * frames);
    for (std::size_t i = 0; i < m.begin.size(); ++i) CHECK_FALSE(v.is_vision(block[i]));
    for (std::size_t i = 0; i < m.end.size(); ++i) CHECK_FALSE(v.is_vision(block[block.size() - 1 - i]));
  }
  CHECK_ERROR(vision_block(v, m, std::vector<int32_t>(300, 0), 256), "whole frames of 256 codes; got 300");
  std::vector<int32_t> bad = frame_codes(2, 1);
  bad[256 + 7] = 8192;
  CHECK_ERROR(vision_block(v, m, bad, 256), "frame 1 has code 8192, outside [0, 8192)");
}

TEST_CASE("vision-text sequences in both orders carry LWM's loss mask", "[vision]") {
  const VisionVocab v = lwm_vocab();
  const std::vector<int32_t> text = {450, 4799, 338, 263, 6635};
  const std::vector<int32_t> image = frame_codes(1, 3), video = frame_codes(3, 9);
  for (bool special : {false, true}) {
    const VisionMarkers m = markers(special);
    const std::vector<int32_t> image_block = vision_block(v, m, image, 256), video_block = vision_block(v, m, video, 256);
    VisionTextExample ex;
    ex.blocks = {image, video};
    ex.codes_per_frame = 256;
    ex.text = text;
    for (VisionOrder order : {VisionOrder::caption, VisionOrder::generate}) {
      ex.order = order;
      const TokenSequence s = vision_text_sequence(v, m, ex);
      std::vector<int32_t> want;
      std::vector<uint8_t> want_mask;
      auto add = [&](const std::vector<int32_t>& ids, uint8_t target) {
        want.insert(want.end(), ids.begin(), ids.end());
        want_mask.insert(want_mask.end(), ids.size(), target);
      };
      if (special) add({1}, 0);  // BOS: never a target
      if (order == VisionOrder::generate) add(text, 0);  // "[text],vision": the prompt conditions
      add(image_block, order == VisionOrder::generate);
      add(video_block, order == VisionOrder::generate);
      if (order == VisionOrder::caption) add(text, 1);  // "[vision],text": the caption is learnt
      if (special) add({2}, 1);  // EOS: a target (LWM sets 1.0)
      CHECK(s.tokens == want);
      CHECK(s.loss_mask == want_mask);
      CHECK(std::count_if(s.tokens.begin(), s.tokens.end(), [&](int32_t id) { return v.is_vision(id); }) == 257 * 4);
    }
    // No text: the vision alone, every vision token a target.
    ex.text.clear();
    const TokenSequence s = vision_text_sequence(v, m, ex);
    CHECK(s.tokens.size() == (special ? 2 : 0) + image_block.size() + video_block.size());
    CHECK(std::accumulate(s.loss_mask.begin(), s.loss_mask.end(), 0) == static_cast<int>(s.tokens.size()) - (special ? 1 : 0));
  }
  VisionTextExample none;
  none.codes_per_frame = 256;
  none.text = text;
  CHECK_ERROR(vision_text_sequence(v, markers(false), none), "at least one image or video");
  CHECK(parse_order("generate", "x") == VisionOrder::generate);
  CHECK_ERROR(parse_order("answer", "f.jsonl:3"), "f.jsonl:3: the task must be");
}

TEST_CASE("vision vocabulary checks", "[vision]") {
  VisionVocab v = lwm_vocab();
  check_vision_vocab(v);
  v.vision_vocab = 8193;
  CHECK_ERROR(check_vision_vocab(v), "at least 8194");
  v.vision_vocab = 8448;
  v.text_vocab = int64_t{1} << 31;
  CHECK_ERROR(check_vision_vocab(v), "exceed int32");
}

TEST_CASE("uniform frame choice is NumPy's linspace(0, n - 1, k).astype(int)", "[vision]") {
  // Values NumPy gives (worked by hand: i x (n - 1) / (k - 1), truncated, the last n - 1).
  CHECK(uniform_frame_indices(10, 4) == std::vector<int64_t>{0, 3, 6, 9});
  CHECK(uniform_frame_indices(100, 8) == std::vector<int64_t>{0, 14, 28, 42, 56, 70, 84, 99});
  CHECK(uniform_frame_indices(5, 1) == std::vector<int64_t>{0});
  CHECK(uniform_frame_indices(3, 8) == std::vector<int64_t>{0, 1, 2});  // fewer frames than asked: all
  CHECK(uniform_frame_indices(0, 8).empty());
  // In general: within one of the exact quotient's floor (below it only where the quotient is an
  // integer and the double product rounds under it), increasing, first 0 and last n - 1.
  for (int64_t n = 2; n < 200; n += 7)
    for (int64_t k = 2; k < n; k += 3) {
      const std::vector<int64_t> idx = uniform_frame_indices(n, k);
      REQUIRE(idx.size() == static_cast<std::size_t>(k));
      CHECK(idx.front() == 0);
      CHECK(idx.back() == n - 1);
      for (int64_t i = 0; i < k; ++i) {
        const int64_t exact = i * (n - 1) / (k - 1);
        const bool integral = i * (n - 1) % (k - 1) == 0;
        CHECK((idx[i] == exact || (integral && idx[i] == exact - 1)));
        if (i) CHECK(idx[i] > idx[i - 1]);
      }
    }
}

TEST_CASE("vision records: fields, defaults and one clear error each", "[vision]") {
  using data::parse_vision_record;
  const data::VisionRecord a = parse_vision_record(R"({"text": "a cat", "images": ["x.png", "y.jpg"], "task": "generate", "id": 7})", "f:1");
  CHECK(a.text == "a cat");
  CHECK(a.images == std::vector<std::string>{"x.png", "y.jpg"});
  CHECK(a.video.empty());
  CHECK(a.task == "generate");
  const data::VisionRecord b = parse_vision_record(R"({"video": "clips/ball.mp4", "fps": 2.5, "max_frames": 8})", "f:2");
  CHECK(b.text.empty());
  CHECK(b.video == "clips/ball.mp4");
  CHECK(b.fps == 2.5);
  CHECK(b.max_frames == 8);
  CHECK(b.task.empty());
  CHECK_ERROR(parse_vision_record("{\"text\": \"x\"", "f:3"), "f:3: not valid JSON");
  CHECK_ERROR(parse_vision_record("[1]", "f:3"), "f:3: not a JSON object");
  CHECK_ERROR(parse_vision_record(R"({"text": "x"})", "f:3"), "neither \"images\" nor \"video\"");
  CHECK_ERROR(parse_vision_record(R"({"images": ["a.png"], "video": "v.mp4"})", "f:3"), "not both");
  CHECK_ERROR(parse_vision_record(R"({"images": []})", "f:3"), "\"images\" is empty");
  CHECK_ERROR(parse_vision_record(R"({"images": "a.png"})", "f:3"), "array of paths");
  CHECK_ERROR(parse_vision_record(R"({"images": ["a.png", 3]})", "f:3"), "non-empty path strings");
  CHECK_ERROR(parse_vision_record(R"({"video": "v.mp4", "fps": 0})", "f:3"), "\"fps\" must be a number in (0, 1000]");
  CHECK_ERROR(parse_vision_record(R"({"video": "v.mp4", "max_frames": 1.5})", "f:3"), "positive integer");
  CHECK_ERROR(parse_vision_record(R"({"images": ["a.png"], "fps": 2})", "f:3"), "apply to a \"video\"");
  CHECK_ERROR(parse_vision_record(R"({"video": "v.mp4", "text": 5})", "f:3"), "\"text\" must be a string");
  CHECK_ERROR(parse_vision_record(R"({"video": "v.mp4", "video": "w.mp4"})", "f:3"), "\"video\" is given more than once");
}
