// llama_config.cpp
#include "src/common/llama_config.h"

#include <cmath>
#include <cstdint>

#include "src/common/input_error.h"
#include "src/common/number_format.h"

namespace rw::model {

void LlamaConfig::validate() const {
  // Upper bounds keep every product the code forms (parameter counts, vocab x hidden) inside
  // 64 bits and every size the kernels index with 32-bit ints (token ids, heads) inside 31 bits.
  auto in_range = [](int64_t v, const char* name, int64_t high) {
    if (v < 1 || v > high)
      throw InputError(std::string("model config: ") + name + " must be an integer in [1, " + std::to_string(high) +
                       "] (got " + std::to_string(v) + ")");
  };
  in_range(vocab_size, "vocab_size", INT32_MAX);
  if (vision_vocab_size < 0 || vision_vocab_size > INT32_MAX - vocab_size)
    throw InputError("model config: vision_vocab_size must be an integer in [0, " + std::to_string(INT32_MAX - vocab_size) +
                     "] (0: text only; vocab_size + vision_vocab_size token ids must fit in 31 bits; got " +
                     std::to_string(vision_vocab_size) + ")");
  in_range(hidden_size, "hidden_size", int64_t(1) << 20);
  in_range(intermediate_size, "intermediate_size", int64_t(1) << 22);
  in_range(num_hidden_layers, "num_hidden_layers", int64_t(1) << 16);
  in_range(num_attention_heads, "num_attention_heads", hidden_size);
  in_range(num_key_value_heads, "num_key_value_heads", num_attention_heads);
  if (hidden_size % num_attention_heads != 0)
    throw InputError("model config: hidden_size (" + std::to_string(hidden_size) +
                     ") must be a multiple of num_attention_heads (" + std::to_string(num_attention_heads) + ")");
  if (num_attention_heads % num_key_value_heads != 0)
    throw InputError("model config: num_attention_heads (" + std::to_string(num_attention_heads) +
                     ") must be a multiple of num_key_value_heads (" + std::to_string(num_key_value_heads) + ")");
  if (head_dim() % 2 != 0) throw InputError("model config: head_dim (hidden_size / num_attention_heads) must be even for RoPE");
  if (!(std::isfinite(rms_norm_eps) && rms_norm_eps > 0))
    throw InputError("model config: rms_norm_eps must be a finite number > 0 (got " + format_number(rms_norm_eps) + ")");
  if (!(std::isfinite(rope_theta) && rope_theta > 1))
    throw InputError("model config: rope_theta must be a finite number > 1 (got " + format_number(rope_theta) + ")");
}

int64_t LlamaConfig::parameter_count() const {
  int64_t n = 0;
  for (const auto& unit : parameter_units(*this)) n += unit.count;
  return n;
}

std::string LlamaConfig::describe() const {
  const std::string vision = has_vision() ? " + vision " + std::to_string(vision_vocab_size) : "";
  return "vocab " + std::to_string(vocab_size) + vision + ", hidden " + std::to_string(hidden_size) + ", intermediate " +
         std::to_string(intermediate_size) + ", layers " + std::to_string(num_hidden_layers) + ", heads " +
         std::to_string(num_attention_heads) + "/" + std::to_string(num_key_value_heads) + ", rope_theta " +
         format_number(rope_theta) + ", rms_norm_eps " + format_number(rms_norm_eps) + ", " +
         std::to_string(parameter_count()) + " parameters";
}

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> fields = {
      {"vocab_size", &LlamaConfig::vocab_size, nullptr, "tokens in the vocabulary (rows of embed_tokens and lm_head)"},
      {"hidden_size", &LlamaConfig::hidden_size, nullptr, "model width (a multiple of num_attention_heads)"},
      {"intermediate_size", &LlamaConfig::intermediate_size, nullptr, "SwiGLU FFN width"},
      {"num_hidden_layers", &LlamaConfig::num_hidden_layers, nullptr, "transformer layers"},
      {"num_attention_heads", &LlamaConfig::num_attention_heads, nullptr, "query heads (head_dim = hidden_size / heads, even)"},
      {"num_key_value_heads", &LlamaConfig::num_key_value_heads, nullptr,
       "key/value heads (grouped-query attention; divides num_attention_heads)"},
      {"rms_norm_eps", nullptr, &LlamaConfig::rms_norm_eps, "epsilon of RMSNorm (> 0)"},
      {"rope_theta", nullptr, &LlamaConfig::rope_theta, "RoPE base frequency (> 1; raised per context-extension stage)"},
      {"vision_vocab_size", &LlamaConfig::vision_vocab_size, nullptr,
       "vision tokens (LWM: 8448; rows of embed_vision and vision_head; ids vocab_size.. ; 0 = text only)", true},
  };
  return fields;
}

bool LlamaConfig::same_architecture(const LlamaConfig& o) const {
  for (const auto& f : config_fields()) {
    if (f.real == &LlamaConfig::rope_theta) continue;
    if (f.integer ? this->*f.integer != o.*f.integer : this->*f.real != o.*f.real) return false;
  }
  return true;
}

LlamaConfig preset_config(const std::string& name) {
  LlamaConfig c;
  if (name == "tiny") return c;  // the defaults above
  if (name == "small") {
    c.vocab_size = 512;
    c.hidden_size = 256;
    c.intermediate_size = 688;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    return c;
  }
  if (name == "7b") {  // LLaMA-2 7B
    c.vocab_size = 32000;
    c.hidden_size = 4096;
    c.intermediate_size = 11008;
    c.num_hidden_layers = 32;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 32;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    return c;
  }
  throw InputError("unknown model preset '" + name + "' (known: tiny, small, 7b)");
}

std::vector<ParamUnit> parameter_units(const LlamaConfig& c) {
  const int64_t h = c.hidden_size, kv = c.kv_width(), inter = c.intermediate_size;
  std::vector<ParamUnit> units;
  auto add = [](ParamUnit& u, TensorSpec t) {
    u.offsets.push_back(u.count);
    u.count += t.count();
    u.tensors.push_back(std::move(t));
  };
  ParamUnit embed;
  add(embed, {"model.embed_tokens.weight", {c.vocab_size, h}, false});
  if (c.has_vision()) add(embed, {"model.embed_vision.weight", {c.vision_vocab_size, h}, false});
  units.push_back(std::move(embed));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ParamUnit u;
    add(u, {p + "input_layernorm.weight", {h}, true});
    add(u, {p + "self_attn.q_proj.weight", {h, h}, false});
    add(u, {p + "self_attn.k_proj.weight", {kv, h}, false});
    add(u, {p + "self_attn.v_proj.weight", {kv, h}, false});
    add(u, {p + "self_attn.o_proj.weight", {h, h}, false});
    add(u, {p + "post_attention_layernorm.weight", {h}, true});
    add(u, {p + "mlp.gate_proj.weight", {inter, h}, false});
    add(u, {p + "mlp.up_proj.weight", {inter, h}, false});
    add(u, {p + "mlp.down_proj.weight", {h, inter}, false});
    units.push_back(std::move(u));
  }
  ParamUnit head;
  add(head, {"model.norm.weight", {h}, true});
  add(head, {"lm_head.weight", {c.vocab_size, h}, false});
  if (c.has_vision()) add(head, {"vision_head.weight", {c.vision_vocab_size, h}, false});
  units.push_back(std::move(head));
  return units;
}

}  // namespace rw::model
