// hf_config.cpp
#include "io/hf_config.h"

#include "io/json_text.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

using json = nlohmann::json;

}  // namespace

HfModelConfig parse_hf_config(const std::string& json_text, const std::string& file) {
  const std::string where = "model config '" + file + "'";
  const json c = parse_json_object(json_text, where, 8);
  HfModelConfig out;
  auto has = [&](const char* name) { return c.contains(name) && !c.at(name).is_null(); };
  auto integer = [&](const char* name) -> int64_t {
    if (!has(name)) throw InputError(where + " has no \"" + name + "\"");
    const json& v = c.at(name);
    if (!v.is_number_integer()) throw InputError(where + ": \"" + name + "\" is " + v.dump() + ", not an integer");
    return v.get<int64_t>();
  };
  auto number = [&](const char* name, double fallback) -> double {
    if (!has(name)) {
      out.notes.push_back(std::string(name) + " not given: " + json(fallback).dump() + " (LlamaConfig's default)");
      return fallback;
    }
    const json& v = c.at(name);
    if (!v.is_number()) throw InputError(where + ": \"" + name + "\" is " + v.dump() + ", not a number");
    return v.get<double>();
  };
  auto flag = [&](const char* name) -> bool {
    if (!has(name)) return false;
    const json& v = c.at(name);
    if (!v.is_boolean()) throw InputError(where + ": \"" + name + "\" is " + v.dump() + ", not true or false");
    return v.get<bool>();
  };
  auto text = [&](const char* name) -> std::string {
    if (!has(name)) return "";
    const json& v = c.at(name);
    if (!v.is_string()) throw InputError(where + ": \"" + name + "\" is " + v.dump() + ", not a string");
    return v.get<std::string>();
  };
  auto token_id = [&](const char* name) -> int64_t {
    if (!has(name)) return -1;
    const json& v = c.at(name);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_array() && !v.empty() && v.front().is_number_integer()) {
      out.notes.push_back(std::string(name) + " is a list: its first entry " + v.front().dump() + " is recorded");
      return v.front().get<int64_t>();
    }
    throw InputError(where + ": \"" + name + "\" is " + v.dump() + ", not a token id");
  };

  const std::string model_type = text("model_type");
  if (!model_type.empty() && model_type != "llama")
    throw InputError(where + ": model_type \"" + model_type + "\" is not \"llama\" (ringworld imports LlamaForCausalLM models)");
  const std::string act = text("hidden_act");
  if (!act.empty() && act != "silu")
    throw InputError(where + ": hidden_act \"" + act + "\" is not supported (ringworld's LLaMA MLP uses silu)");
  if (has("rope_scaling"))
    throw InputError(where + ": rope_scaling " + c.at("rope_scaling").dump() +
                     " is not supported (ringworld's RoPE is unscaled; only rope_theta is read)");
  if (flag("attention_bias")) throw InputError(where + ": attention_bias true is not supported (no biases in ringworld's LLaMA)");
  if (flag("mlp_bias")) throw InputError(where + ": mlp_bias true is not supported (no biases in ringworld's LLaMA)");

  model::LlamaConfig& l = out.llama;
  l.vocab_size = integer("vocab_size");
  l.hidden_size = integer("hidden_size");
  l.intermediate_size = integer("intermediate_size");
  l.num_hidden_layers = integer("num_hidden_layers");
  l.num_attention_heads = integer("num_attention_heads");
  if (has("num_key_value_heads")) {
    l.num_key_value_heads = integer("num_key_value_heads");
  } else {
    l.num_key_value_heads = l.num_attention_heads;
    out.notes.push_back("num_key_value_heads not given: num_attention_heads (" + std::to_string(l.num_attention_heads) + ")");
  }
  // LWM's vision models: the vision table and head beside the text ones (absent: text only).
  if (has("vision_vocab_size")) l.vision_vocab_size = integer("vision_vocab_size");
  l.rms_norm_eps = number("rms_norm_eps", 1e-6);
  l.rope_theta = number("rope_theta", 10000.0);
  if (has("max_position_embeddings")) {
    out.max_position_embeddings = integer("max_position_embeddings");
    if (out.max_position_embeddings < 1) throw InputError(where + ": max_position_embeddings must be positive");
  } else {
    out.notes.push_back("max_position_embeddings not given: 2048 (LlamaConfig's default)");
  }
  out.tie_word_embeddings = flag("tie_word_embeddings");
  out.torch_dtype = text("torch_dtype");
  out.bos_token_id = token_id("bos_token_id");
  out.eos_token_id = token_id("eos_token_id");
  try {
    l.validate();
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
  if (has("head_dim") && integer("head_dim") != l.head_dim())
    throw InputError(where + ": head_dim " + std::to_string(integer("head_dim")) + " differs from hidden_size / num_attention_heads = " +
                     std::to_string(l.head_dim()) + " (not supported)");
  return out;
}

std::string make_hf_config_json(const HfModelConfig& config, const std::string& torch_dtype) {
  const model::LlamaConfig& l = config.llama;
  nlohmann::ordered_json c;
  c["architectures"] = {"LlamaForCausalLM"};
  c["model_type"] = "llama";
  c["hidden_act"] = "silu";
  c["hidden_size"] = l.hidden_size;
  c["intermediate_size"] = l.intermediate_size;
  c["num_hidden_layers"] = l.num_hidden_layers;
  c["num_attention_heads"] = l.num_attention_heads;
  c["num_key_value_heads"] = l.num_key_value_heads;
  c["vocab_size"] = l.vocab_size;
  if (l.has_vision()) c["vision_vocab_size"] = l.vision_vocab_size;  // not a transformers field
  c["rms_norm_eps"] = l.rms_norm_eps;
  c["rope_theta"] = l.rope_theta;
  c["rope_scaling"] = nullptr;
  c["max_position_embeddings"] = config.max_position_embeddings;
  c["tie_word_embeddings"] = false;
  c["attention_bias"] = false;
  c["mlp_bias"] = false;
  c["pretraining_tp"] = 1;
  c["initializer_range"] = 0.02;
  c["use_cache"] = true;
  if (config.bos_token_id >= 0) c["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_id >= 0) c["eos_token_id"] = config.eos_token_id;
  c["torch_dtype"] = torch_dtype;
  return c.dump(2) + "\n";
}

std::string make_generation_config_json(const HfModelConfig& config) {
  if (config.bos_token_id < 0 && config.eos_token_id < 0) return "";
  nlohmann::ordered_json g;
  if (config.bos_token_id >= 0) g["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_id >= 0) g["eos_token_id"] = config.eos_token_id;
  return g.dump(2) + "\n";
}

}  // namespace rw::io
