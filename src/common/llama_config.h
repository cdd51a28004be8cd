// llama_config.h: the model's shape, named as Hugging Face's LlamaConfig, and the parameter
// tensors it implies (names and shapes as Hugging Face's LLaMA checkpoints). A plain description
// that every layer may read (io/ writes it into files), so it lives in common; the model's code
// includes it as src/model/llama_config.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::model {

struct LlamaConfig {
  int64_t vocab_size = 256;
  int64_t hidden_size = 128;
  int64_t intermediate_size = 344;
  int64_t num_hidden_layers = 2;
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 4;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  // Vision tokens (LWM's dual vocabulary; 0 = a text-only model). One id space: ids in
  // [0, vocab_size) are text, vocab_size + v is vision token v (v < vision_vocab_size). The input's
  // id picks the embedding table (embed_tokens or embed_vision), the target's id the head
  // (lm_head or vision_head): a target's cross-entropy is over its own head's logits only.
  int64_t vision_vocab_size = 0;

  // Every token id of the model: text and vision (rows of the embedding and of the head, which
  // lie back to back in their parameter units: embed_tokens then embed_vision, lm_head then
  // vision_head, so each is one [total_vocab_size, hidden] table).
  int64_t total_vocab_size() const { return vocab_size + vision_vocab_size; }
  bool has_vision() const { return vision_vocab_size > 0; }
  // The cross-entropy's split column (device/kernel_args.h CrossEntropyArgs::text_vocab): 0 for
  // a text-only model (one softmax over every column).
  int64_t loss_split_column() const { return has_vision() ? vocab_size : 0; }
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t kv_width() const { return num_key_value_heads * head_dim(); }
  // Throws InputError naming the field and its allowed range when a value is out of range
  // (counts >= 1 and small enough to index in 32 bits, eps > 0, theta > 1, all finite) or the
  // shape is inconsistent (heads divide hidden, kv heads divide heads, head_dim even).
  void validate() const;
  int64_t parameter_count() const;
  std::string describe() const;  // one line
  // Same shape and numerics; rope_theta aside (it changes between context-extension stages).
  bool same_architecture(const LlamaConfig& other) const;
};

// The configuration fields by their LlamaConfig names (exactly one member pointer is set), with
// what each means (for --help). An optional field (vision_vocab_size) may be 0 and is written to
// files only when it is not 0; a file without it means 0 (files from before it existed, and
// text-only models' files, are unchanged).
struct ConfigField {
  const char* name;
  int64_t LlamaConfig::*integer;
  double LlamaConfig::*real;
  const char* meaning = "";
  bool optional = false;
  // Whether the field goes into a file for this config (optional fields only when not 0).
  bool written(const LlamaConfig& c) const { return !optional || (integer ? c.*integer != 0 : c.*real != 0); }
};
const std::vector<ConfigField>& config_fields();

// A named preset ("tiny", "small", "7b") or throws InputError.
LlamaConfig preset_config(const std::string& name);

struct TensorSpec {
  std::string name;            // Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight
  std::vector<int64_t> shape;  // [out, in] for projections
  bool is_norm = false;        // RMSNorm weights: no weight decay, initialised to 1
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Parameters grouped in units gathered together (FSDP): unit 0 = embedding (embed_tokens, then
// embed_vision for a vision model), units 1..L = layers, unit L+1 = final norm, lm_head (then
// vision_head for a vision model). Within a unit tensors are laid out back to back
// in the order listed.
struct ParamUnit {
  std::vector<TensorSpec> tensors;
  std::vector<int64_t> offsets;  // element offset of each tensor in the unit
  int64_t count = 0;             // elements in the unit
};

std::vector<ParamUnit> parameter_units(const LlamaConfig& config);

// Indices of the tensors within a layer unit (the order of parameter_units()).
enum LayerTensor : int {
  kInputNorm = 0, kQProj, kKProj, kVProj, kOProj, kPostNorm, kGateProj, kUpProj, kDownProj, kLayerTensorCount
};

}  // namespace rw::model
