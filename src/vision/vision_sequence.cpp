// vision_sequence.cpp: see vision_sequence.h.
#include "src/vision/vision_sequence.h"

#include <limits>

#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::vision {

int64_t default_vision_vocab(int64_t codebook_size) { return (codebook_size + 2 + 255) / 256 * 256; }

void check_vision_vocab(const VisionVocab& vocab) {
  if (vocab.text_vocab < 1) throw InputError("the text vocabulary must have at least one id");
  if (vocab.codebook_size < 1) throw InputError("the VQGAN codebook must have at least one code");
  if (vocab.vision_vocab < vocab.codebook_size + 2)
    throw InputError("the vision vocabulary (" + std::to_string(vocab.vision_vocab) + ") must hold the " +
                     std::to_string(vocab.codebook_size) + " codes, <eof> and <eov> (at least " +
                     std::to_string(vocab.codebook_size + 2) + ")");
  if (vocab.total() > std::numeric_limits<int32_t>::max())
    throw InputError("text (" + std::to_string(vocab.text_vocab) + ") + vision (" + std::to_string(vocab.vision_vocab) +
                     ") vocabularies exceed int32 token ids");
}

const char* order_name(VisionOrder order) { return order == VisionOrder::caption ? "caption" : "generate"; }

VisionOrder parse_order(const std::string& name, const std::string& where) {
  if (name == "caption") return VisionOrder::caption;
  if (name == "generate") return VisionOrder::generate;
  throw InputError(where + ": the task must be \"caption\" (vision, then text) or \"generate\" (text, then vision); got \"" +
                   name + "\"");
}

std::vector<int32_t> vision_block(const VisionVocab& vocab, const VisionMarkers& markers, const std::vector<int32_t>& codes,
                                  int64_t codes_per_frame) {
  RW_CHECK(codes_per_frame >= 1, "vision_block: codes_per_frame must be positive");
  const int64_t n = static_cast<int64_t>(codes.size());
  if (n == 0 || n % codes_per_frame != 0)
    throw InputError("a vision block needs whole frames of " + std::to_string(codes_per_frame) + " codes; got " +
                     std::to_string(n) + " codes");
  const int64_t frames = n / codes_per_frame;
  std::vector<int32_t> out(markers.begin);
  out.reserve(markers.begin.size() + static_cast<std::size_t>(frames * (codes_per_frame + 1)) + markers.end.size());
  for (int64_t f = 0; f < frames; ++f) {
    for (int64_t i = 0; i < codes_per_frame; ++i) {
      const int32_t code = codes[static_cast<std::size_t>(f * codes_per_frame + i)];
      if (code < 0 || code >= vocab.codebook_size)
        throw InputError("frame " + std::to_string(f) + " has code " + std::to_string(code) + ", outside [0, " +
                         std::to_string(vocab.codebook_size) + ")");
      out.push_back(vocab.code_id(code));
    }
    out.push_back(f + 1 == frames ? vocab.eov_id() : vocab.eof_id());
  }
  out.insert(out.end(), markers.end.begin(), markers.end.end());
  return out;
}

TokenSequence vision_text_sequence(const VisionVocab& vocab, const VisionMarkers& markers, const VisionTextExample& example) {
  if (example.blocks.empty()) throw InputError("an example needs at least one image or video");
  TokenSequence s;
  auto add = [&](const std::vector<int32_t>& ids, uint8_t target) {
    s.tokens.insert(s.tokens.end(), ids.begin(), ids.end());
    s.loss_mask.insert(s.loss_mask.end(), ids.size(), target);
  };
  // Without text, nothing conditions the vision: all of it is the target.
  const bool has_text = !example.text.empty();
  const uint8_t vision_target = !has_text || example.order == VisionOrder::generate;
  if (markers.bos >= 0) add({markers.bos}, 0);
  if (has_text && example.order == VisionOrder::generate) add(example.text, 0);
  for (const std::vector<int32_t>& codes : example.blocks) add(vision_block(vocab, markers, codes, example.codes_per_frame), vision_target);
  if (has_text && example.order == VisionOrder::caption) add(example.text, 1);
  if (markers.eos >= 0) add({markers.eos}, 1);
  return s;
}

std::vector<int64_t> uniform_frame_indices(int64_t n, int64_t k) {
  RW_CHECK(k >= 1 && n >= 0, "uniform_frame_indices: k must be positive");
  std::vector<int64_t> out;
  if (n <= k) {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  // NumPy's linspace: i * step in double (step = (n - 1) / (k - 1)), the last set to n - 1
  // exactly; astype(int) truncates.
  const double step = k > 1 ? static_cast<double>(n - 1) / static_cast<double>(k - 1) : 0.0;
  for (int64_t i = 0; i < k; ++i) out.push_back(i + 1 == k && k > 1 ? n - 1 : static_cast<int64_t>(static_cast<double>(i) * step));
  return out;
}

}  // namespace rw::vision
