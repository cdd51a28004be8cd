// vision_sequence.h: the token layout of LWM's vision-language sequences, in the one id space the
// model uses: ids [0, text_vocab) are text, id text_vocab + v is vision token v, so a position is
// vision exactly when its id >= text_vocab (no separate mask array). Vision tokens: the
// codebook's codes 0 .. codebook_size - 1, then <eof> = codebook_size and <eov> =
// codebook_size + 1 (LWM: 8192 and 8193 in a vision vocabulary of 8448), the rest spare.
//
// A vision block (LWM's VisionTextProcessor, lwm/data.py):
//   tokenize("<vision>")                ordinary text pieces, not a special token
//   per frame: its codes, then <eof>    (<eov> after the last frame instead)
//   tokenize("</vision>")
// so codes_per_frame + 1 tokens per frame (257 for LWM's 16 x 16 codes). An image is a block of
// one frame; a video one block of all its frames.
//
// An example is vision + text in one of two orders, as LWM trains (its per-example "fields"):
//   caption:  [vision blocks], text     the text is the target: vision given, caption learnt
//   generate: [text], vision blocks     the vision is the target: prompt given, frames learnt
// Loss mask (LWM's data.py: a field in brackets has mask 0, others 1; BOS 0; EOS 1): the
// conditioning part is not a target, the other part, and the EOS, are. BOS/EOS are added when
// the tokenizer has them (bos/eos >= 0), as LWM adds them; a byte tokenizer has none. An
// example without text is the vision alone, every token a target (LWM's video-only data).
// The mask here is per token: 0 means "this token is not predicted" (io/token_dataset.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::vision {

struct VisionVocab {
  int64_t text_vocab = 0;     // ids below are text
  int64_t codebook_size = 0;  // vision tokens [0, codebook_size) are codes
  int64_t vision_vocab = 0;   // vision tokens [0, vision_vocab); >= codebook_size + 2

  int32_t code_id(int32_t code) const { return static_cast<int32_t>(text_vocab + code); }
  int32_t eof_id() const { return static_cast<int32_t>(text_vocab + codebook_size); }
  int32_t eov_id() const { return static_cast<int32_t>(text_vocab + codebook_size + 1); }
  bool is_vision(int32_t id) const { return id >= text_vocab; }
  int64_t total() const { return text_vocab + vision_vocab; }
};

// LWM's size: codes + <eof> + <eov>, rounded up to a multiple of 256 (8192 -> 8448).
int64_t default_vision_vocab(int64_t codebook_size);

// Throws InputError unless text_vocab >= 1, codebook_size >= 1, vision_vocab >= codebook + 2 and
// the total fits int32 ids.
void check_vision_vocab(const VisionVocab& vocab);

// The text pieces around each vision block and the tokenizer's BOS/EOS (-1: none).
struct VisionMarkers {
  std::vector<int32_t> begin;  // tokenize("<vision>")
  std::vector<int32_t> end;    // tokenize("</vision>")
  int32_t bos = -1, eos = -1;
};

enum class VisionOrder { caption, generate };
const char* order_name(VisionOrder order);
// "caption" or "generate"; throws InputError naming `where` otherwise.
VisionOrder parse_order(const std::string& name, const std::string& where);

// One vision block: frames x codes_per_frame codes (row-major per frame, as CODES.h5 holds them),
// each code checked against the codebook (InputError naming the frame).
std::vector<int32_t> vision_block(const VisionVocab& vocab, const VisionMarkers& markers, const std::vector<int32_t>& codes,
                                  int64_t codes_per_frame);

struct VisionTextExample {
  std::vector<std::vector<int32_t>> blocks;  // codes of each vision block (an image, a video)
  int64_t codes_per_frame = 0;
  std::vector<int32_t> text;  // the tokenized text; may be empty
  VisionOrder order = VisionOrder::caption;
};

struct TokenSequence {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;  // 1: a target
};

TokenSequence vision_text_sequence(const VisionVocab& vocab, const VisionMarkers& markers, const VisionTextExample& example);

// LWM's uniform frame choice (max_n_frames): np.linspace(0, n - 1, k).astype(int) when n > k,
// else every frame 0 .. n - 1. k >= 1.
std::vector<int64_t> uniform_frame_indices(int64_t n, int64_t k);

}  // namespace rw::vision
