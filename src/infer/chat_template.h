// chat_template.h: a prompt as the token ids a chat model expects (`generate --chat NAME`).
//   none (the default): the prompt's own tokens, nothing added.
//   lwm: LWM's chat format, "You are a helpful assistant. USER: {prompt} ASSISTANT:" (one space
//        after each colon, none after the last), with the tokenizer's BOS in front (LLaMA's
//        SentencePiece vocabulary: id 1; a tokenizer without one, the byte tokenizer, gets none).
// With vision in the prompt (`generate --image/--video/--codes`, LWM's vision_chat.py), the
// vision blocks (vision_sequence.h vision_block: "<vision>", codes, <eof>/<eov>, "</vision>") go
//   lwm:  BOS "You are a helpful assistant. USER: {prompt}\n" {blocks} " ASSISTANT:"
//   none: {blocks} {prompt}   (the caption order `prepare --vision` trains: vision, then text)
// each text part tokenized on its own. Generating vision (`generate --output-vision`, LWM's
// vision_generation.py), the conditional and the unconditional prompt of the guidance are
//   lwm:  BOS "You are a helpful assistant. USER: Generate an image of {prompt} ASSISTANT: <vision>"
//         ("a video of" for videos), and BOS "<vision>"
//   none: {prompt} "<vision>" (the generate order: text, then vision), and "<vision>"
// Either way the stop token is the tokenizer's EOS (LLaMA: 2; -1 when it has none): generation
// ends there when asked to (--stop-at-eos; always with --chat lwm).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/data/tokenizer.h"
#include "src/vision/vision_sequence.h"

namespace rw::infer {

struct ChatPrompt {
  std::vector<int32_t> ids;
  int32_t stop_token = -1;  // -1: none
};

// The prompt text of a template ("none": the prompt itself). Throws InputError for an unknown
// name, listing the known ones.
std::string chat_prompt_text(const std::string& template_name, const std::string& prompt);

// The ids of chat_prompt_text, BOS first where the template wants it.
ChatPrompt apply_chat_template(const std::string& template_name, const std::string& prompt,
                               const data::Tokenizer& tokenizer);

const std::vector<std::string>& chat_template_names();

// The tokenizer's vision markers: encode("<vision>"), encode("</vision>"), its BOS and EOS (as
// `prepare --vision` builds its sequences).
vision::VisionMarkers vision_markers(const data::Tokenizer& tokenizer);

// A question about vision: `vision` is the blocks' tokens, placed as the template says.
ChatPrompt apply_vision_chat_template(const std::string& template_name, const std::string& prompt,
                                      const std::vector<int32_t>& vision, const data::Tokenizer& tokenizer);

struct VisionGenerationPrompts {
  std::vector<int32_t> cond, uncond;
};
VisionGenerationPrompts vision_generation_prompts(const std::string& template_name, const std::string& prompt, bool video,
                                                  const data::Tokenizer& tokenizer);  // {"none", "lwm"}

}  // namespace rw::infer
