// hf_config.h: Hugging Face LlamaConfig (config.json) to and from ringworld's model config.
// Reading accepts model_type "llama" (or none) with LlamaConfig's field names and defaults
// (num_key_value_heads = num_attention_heads, rms_norm_eps 1e-6, rope_theta 10000,
// max_position_embeddings 2048, tie_word_embeddings false: each default taken is noted), and
// refuses what ringworld's model does not compute: rope_scaling, attention or MLP biases, an
// activation other than silu, a head_dim other than hidden_size / num_attention_heads.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/common/llama_config.h"

namespace rw::io {

struct HfModelConfig {
  model::LlamaConfig llama;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  std::string torch_dtype;                       // "" when absent
  int64_t bos_token_id = -1, eos_token_id = -1;  // -1: absent
  std::vector<std::string> notes;                // defaults taken, fields read loosely
};

// Throws InputError naming `file` and the field.
HfModelConfig parse_hf_config(const std::string& json_text, const std::string& file);

// config.json for LlamaForCausalLM (what transformers' AutoModelForCausalLM loads), with
// torch_dtype = `torch_dtype` ("float32", "bfloat16", "float16").
std::string make_hf_config_json(const HfModelConfig& config, const std::string& torch_dtype);

// generation_config.json (bos/eos when known); "" when neither is known.
std::string make_generation_config_json(const HfModelConfig& config);

}  // namespace rw::io
