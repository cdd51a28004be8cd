// chat_template.h: a prompt as the token ids a chat model expects (`generate --chat NAME`).
//   none (the default): the prompt's own tokens, nothing added.
//   lwm: LWM's chat format, "You are a helpful assistant. USER: {prompt} ASSISTANT:" (one space
//        after each colon, none after the last), with the tokenizer's BOS in front (LLaMA's
//        SentencePiece vocabulary: id 1; a tokenizer without one, the byte tokenizer, gets none).
// Either way the stop token is the tokenizer's EOS (LLaMA: 2; -1 when it has none): generation
// ends there when asked to (--stop-at-eos; always with --chat lwm).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/data/tokenizer.h"

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

const std::vector<std::string>& chat_template_names();  // {"none", "lwm"}

}  // namespace rw::infer
