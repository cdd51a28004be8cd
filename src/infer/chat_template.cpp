// chat_template.cpp
#include "src/infer/chat_template.h"

#include "src/common/input_error.h"

namespace rw::infer {

const std::vector<std::string>& chat_template_names() {
  static const std::vector<std::string> names = {"none", "lwm"};
  return names;
}

std::string chat_prompt_text(const std::string& name, const std::string& prompt) {
  if (name == "none") return prompt;
  if (name == "lwm") return "You are a helpful assistant. USER: " + prompt + " ASSISTANT:";
  std::string known;
  for (const auto& n : chat_template_names()) known += (known.empty() ? "" : ", ") + n;
  throw InputError("unknown chat template '" + name + "' (known: " + known + ")");
}

ChatPrompt apply_chat_template(const std::string& name, const std::string& prompt, const data::Tokenizer& tokenizer) {
  const std::string text = chat_prompt_text(name, prompt);
  ChatPrompt out;
  if (name == "lwm" && tokenizer.bos_id() >= 0) out.ids.push_back(tokenizer.bos_id());
  const std::vector<int32_t> ids = tokenizer.encode(text);
  out.ids.insert(out.ids.end(), ids.begin(), ids.end());
  out.stop_token = tokenizer.eos_id();
  return out;
}

}  // namespace rw::infer
