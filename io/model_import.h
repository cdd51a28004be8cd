// model_import.h: importing published LLaMA weights into a ringworld parameter file
// (param_file_writer.h). An ImportSource is opened and validated completely first (config,
// every tensor's name, dtype, shape and byte range) without reading any tensor data, so bad input
// fails in seconds with one InputError naming the file and the tensor; then write_imported_model
// streams the tensors, one in memory at a time, converted to float32 exactly.
//
// Besides the config attributes, the output carries (root attributes, read back by the
// exporter and by later commands): max_position_embeddings, bos_token_id, eos_token_id (int64,
// when known), torch_dtype (the source's dtype name, "bfloat16" ...: the exporter's default),
// source ("hf:DIR" or "lwm-jax:FILE"), tokenizer (as `ringworld prepare` records it, when given).
// The sources: hf_import.cpp (Hugging Face directories) and lwm_jax_import.h (LWM's JAX files).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/hf_config.h"

namespace rw::io {

class ParamFileWriter;

// Element types the importers convert to float32 (exactly).
enum class SourceDtype { f32, f16, bf16 };

// dst[i] = the value of element i of `src` (little-endian, `count` elements).
void convert_to_f32(const uint8_t* src, SourceDtype dtype, int64_t count, float* dst);

class ImportSource {
 public:
  virtual ~ImportSource() = default;
  const HfModelConfig& config() const { return config_; }
  // What was defaulted, inferred, ignored or converted: one line each, for the user.
  const std::vector<std::string>& notes() const { return notes_; }
  const std::string& description() const { return description_; }  // "hf:/abs/dir", "lwm-jax:/abs/file"
  // Writes every parameter (and extra tensors) to `writer`; progress(done, total) after each.
  virtual void write_tensors(ParamFileWriter& writer, const std::function<void(int64_t, int64_t)>& progress) const = 0;

 protected:
  HfModelConfig config_;
  std::vector<std::string> notes_;
  std::string description_;
};

// A Hugging Face LLaMA directory: config.json and model.safetensors, or the shards named by
// model.safetensors.index.json; F32, F16 or BF16. tie_word_embeddings: lm_head.weight is written
// as a copy of model.embed_tokens.weight (ringworld's head is untied; noted). Throws InputError.
std::unique_ptr<ImportSource> open_hf_directory(const std::string& dir);

// Writes `output` atomically: config and the attributes above, then source.write_tensors.
// `tokenizer` is recorded when non-empty. Throws InputError.
void write_imported_model(const ImportSource& source, const std::string& output, const std::string& tokenizer,
                          const std::function<void(int64_t, int64_t)>& progress);

// The attributes above, read back from a parameter file or checkpoint (absent ones keep
// HfModelConfig's defaults; max_position_embeddings falls back to 0 = unknown).
struct ImportedAttributes {
  int64_t max_position_embeddings = 0;
  int64_t bos_token_id = -1, eos_token_id = -1;
  std::string torch_dtype, source, tokenizer;
};
ImportedAttributes read_imported_attributes(const std::string& path);

}  // namespace rw::io
