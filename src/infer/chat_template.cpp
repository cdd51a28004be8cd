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

vision::VisionMarkers vision_markers(const data::Tokenizer& tokenizer) {
  vision::VisionMarkers m;
  m.begin = tokenizer.encode("<vision>");
  m.end = tokenizer.encode("</vision>");
  m.bos = tokenizer.bos_id();
  m.eos = tokenizer.eos_id();
  return m;
}

namespace {
void append(std::vector<int32_t>& to, const std::vector<int32_t>& ids) { to.insert(to.end(), ids.begin(), ids.end()); }
}  // namespace

ChatPrompt apply_vision_chat_template(const std::string& name, const std::string& prompt, const std::vector<int32_t>& vision,
                                      const data::Tokenizer& tokenizer) {
  chat_prompt_text(name, "");  // validates the name
  ChatPrompt out;
  out.stop_token = tokenizer.eos_id();
  if (name == "none") {
    append(out.ids, vision);
    append(out.ids, tokenizer.encode(prompt));
    return out;
  }
  if (tokenizer.bos_id() >= 0) out.ids.push_back(tokenizer.bos_id());
  append(out.ids, tokenizer.encode("You are a helpful assistant. USER: " + prompt + "\n"));
  append(out.ids, vision);
  append(out.ids, tokenizer.encode(" ASSISTANT:"));
  return out;
}

VisionGenerationPrompts vision_generation_prompts(const std::string& name, const std::string& prompt, bool video,
                                                  const data::Tokenizer& tokenizer) {
  chat_prompt_text(name, "");  // validates the name
  VisionGenerationPrompts out;
  if (name == "none") {
    append(out.cond, tokenizer.encode(prompt));
    append(out.cond, tokenizer.encode("<vision>"));
    out.uncond = tokenizer.encode("<vision>");
    return out;
  }
  if (tokenizer.bos_id() >= 0) {
    out.cond.push_back(tokenizer.bos_id());
    out.uncond.push_back(tokenizer.bos_id());
  }
  append(out.cond, tokenizer.encode(std::string("You are a helpful assistant. USER: Generate ") +
                                    (video ? "a video" : "an image") + " of " + prompt + " ASSISTANT: <vision>"));
  append(out.uncond, tokenizer.encode("<vision>"));
  return out;
}

}  // namespace rw::infer
