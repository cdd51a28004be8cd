// llama_config.cpp
#include "src/model/llama_config.h"

#include <cmath>
#include <cstdint>
#include <cstdio>

#include "src/common/input_error.h"

namespace rw::model {

void LlamaConfig::validate() const {
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw InputError(std::string("model config: ") + name + " must be positive (got " + std::to_string(v) + ")");
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  // Upper bounds that keep every tensor's and the model's element count inside int64 (a file or
  // option could otherwise overflow them): far above any real model (LLaMA-3 405B has vocab 128K,
  // hidden 16K, intermediate 53K, 126 layers). Token ids are int32, hence the vocabulary's.
  auto at_most = [](int64_t v, int64_t limit, const char* name) {
    if (v > limit)
      throw InputError(std::string("model config: ") + name + " is " + std::to_string(v) + ", more than the largest supported (" +
                       std::to_string(limit) + ")");
  };
  at_most(vocab_size, INT32_MAX, "vocab_size");
  at_most(hidden_size, int64_t{1} << 20, "hidden_size");
  at_most(intermediate_size, int64_t{1} << 22, "intermediate_size");
  at_most(num_hidden_layers, int64_t{1} << 16, "num_hidden_layers");
  if (hidden_size % num_attention_heads != 0)
    throw InputError("model config: hidden_size (" + std::to_string(hidden_size) +
                     ") must be a multiple of num_attention_heads (" + std::to_string(num_attention_heads) + ")");
  if (num_attention_heads % num_key_value_heads != 0)
    throw InputError("model config: num_attention_heads (" + std::to_string(num_attention_heads) +
                     ") must be a multiple of num_key_value_heads (" + std::to_string(num_key_value_heads) + ")");
  if (head_dim() % 2 != 0) throw InputError("model config: head_dim (hidden_size / num_attention_heads) must be even for RoPE");
  if (!(rms_norm_eps > 0) || !std::isfinite(rms_norm_eps)) throw InputError("model config: rms_norm_eps must be positive and finite");
  if (!(rope_theta > 1) || !std::isfinite(rope_theta)) throw InputError("model config: rope_theta must be greater than 1 and finite");
}

int64_t LlamaConfig::parameter_count() const {
  int64_t n = 0;
  for (const auto& unit : parameter_units(*this)) n += unit.count;
  return n;
}

namespace {

// The integer part, printed in full: a cast to an integer type overflows (undefined) for values
// such as rope_theta = 1e30 that a file may hold.
std::string whole_number_text(double value) {
  char text[400];
  std::snprintf(text, sizeof text, "%.0f", std::trunc(value));
  return text;
}

}  // namespace

std::string LlamaConfig::describe() const {
  return "vocab " + std::to_string(vocab_size) + ", hidden " + std::to_string(hidden_size) + ", intermediate " +
         std::to_string(intermediate_size) + ", layers " + std::to_string(num_hidden_layers) + ", heads " +
         std::to_string(num_attention_heads) + "/" + std::to_string(num_key_value_heads) + ", rope_theta " +
         whole_number_text(rope_theta) + ", rms_norm_eps " + std::to_string(rms_norm_eps) + ", " +
         std::to_string(parameter_count()) + " parameters";
}

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> fields = {
      {"vocab_size", &LlamaConfig::vocab_size, nullptr},
      {"hidden_size", &LlamaConfig::hidden_size, nullptr},
      {"intermediate_size", &LlamaConfig::intermediate_size, nullptr},
      {"num_hidden_layers", &LlamaConfig::num_hidden_layers, nullptr},
      {"num_attention_heads", &LlamaConfig::num_attention_heads, nullptr},
      {"num_key_value_heads", &LlamaConfig::num_key_value_heads, nullptr},
      {"rms_norm_eps", nullptr, &LlamaConfig::rms_norm_eps},
      {"rope_theta", nullptr, &LlamaConfig::rope_theta},
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
  units.push_back(std::move(head));
  return units;
}

}  // namespace rw::model
