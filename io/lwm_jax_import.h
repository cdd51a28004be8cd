// lwm_jax_import.h: LWM's JAX parameter files (lwm_jax_stream.h) as an ImportSource
// (model_import.h), mapped to Hugging Face LLaMA names:
//   transformer/wte/embedding                   -> model.embed_tokens.weight     (as is)
//   transformer/h/N/attention/wq|wk|wv|wo/kernel -> layers.N.self_attn.q|k|v|o_proj.weight
//   transformer/h/N/feed_forward/w1|w2|w3/kernel -> layers.N.mlp.gate|down|up_proj.weight
//   transformer/h/N/attention_norm|ffn_norm/kernel -> layers.N.input|post_attention_layernorm.weight
//   transformer/ln_f/kernel, lm_head/kernel      -> model.norm.weight, lm_head.weight
//   transformer/vte/embedding, vision_head/kernel -> model.embed_vision.weight, vision_head.weight
//                                                   (a vision model: vision_vocab_size = vte's rows)
// Flax kernels are (in, out) and are transposed to (out, in). LWM's RoPE rotates adjacent pairs
// (x[2i], x[2i+1]); ringworld's (Hugging Face's) rotates halves (x[i], x[i + d/2]): the rows of
// q_proj and k_proj are permuted per head so that row j*d/2 + i takes row 2i + j (j = 0, 1),
// which gives the same attention scores. Layers stacked by nn.scan (transformer/h/scan_decoder/...,
// the layer axis first or second: LWM's param_scan_axis 0 or 1) are split. Key paths may start
// with ("params", "params") (a train state, "trainstate_params::"): other keys are then skipped.
// The vision tables (both or neither) make a vision model (LlamaConfig::vision_vocab_size):
// the embedding as is, the head transposed like lm_head.
//
// The model config is not in the file. What the shapes show (vocab, hidden, intermediate,
// layers, kv width) is inferred and checked against the spec; num_attention_heads cannot be seen
// and must be given; rms_norm_eps, rope_theta and max_position_embeddings default to LWM's
// LLaMAConfig defaults (1e-6, 10000, 4096), each default noted.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "io/model_import.h"

namespace rw::io {

// A partial model config (--config): absent fields are inferred from the shapes or defaulted.
struct LwmModelSpec {
  std::optional<int64_t> vocab_size, vision_vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
      num_key_value_heads, max_position_embeddings, bos_token_id, eos_token_id, scan_axis;
  std::optional<double> rms_norm_eps, rope_theta;
  std::string origin;  // for messages: "preset lwm-7b", "config file X"
};

// "lwm-7b": LWM-Text-1M / LWM-Text-Chat-1M (LLaMA-2 7B, vocab 32000, rope_theta 5e7,
// max_position_embeddings 1048576, rms_norm_eps 1e-6, bos 1, eos 2). Throws InputError.
LwmModelSpec lwm_model_preset(const std::string& name);

// A JSON object with Hugging Face LlamaConfig names or LWM's LLaMAConfig names (theta,
// max_sequence_length, param_scan_axis); other fields are ignored. Throws InputError.
LwmModelSpec parse_lwm_config_json(const std::string& json_text, const std::string& file);

// Opens, indexes and validates FILE ("params::FILE", "trainstate_params::FILE" and
// "trainstate::FILE" spellings accepted). Throws InputError naming the key.
std::unique_ptr<ImportSource> open_lwm_jax(const std::string& file, const LwmModelSpec& spec);

// out[(h*d + j*d/2 + i) * in + c] = w[(h*d + 2i + j) * in + c] for every head h of `heads`, i < d/2,
// j < 2, column c < in: adjacent-pair RoPE rows to rotate-half rows (d = head_dim).
void adjacent_pairs_to_rotate_half(const float* w, int64_t heads, int64_t head_dim, int64_t in, float* out);

}  // namespace rw::io
