// hf_export.h: a ringworld parameter file or training checkpoint as a Hugging Face LLaMA
// directory that transformers' LlamaForCausalLM loads: model.safetensors (or, past the shard
// size, model-0000k-of-0000n.safetensors and model.safetensors.index.json), config.json and,
// when bos/eos are known, generation_config.json. Tensors are read one at a time (their
// checksums verified), converted to the chosen dtype (float32 as is; bfloat16 and float16 rounded
// to nearest even, float16 overflowing to infinity) and streamed into the shards.
// Atomic: every file is written under a temporary name (.NAME.tmp) and renamed only when all are
// complete, config.json last; a directory that already holds model weights is refused.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rw::io {

struct HfExportOptions {
  std::string dtype;                           // "fp32" | "bf16" | "fp16"; "": the file's torch_dtype, else fp32
  uint64_t max_shard_bytes = 5000000000ull;    // transformers' default "5GB"
  int64_t max_position_embeddings = 0;         // 0: the file's attribute, else its seq_len, else 2048
};

struct HfExportResult {
  std::string dtype;                // "float32", "bfloat16", "float16"
  std::vector<std::string> files;   // written, in the directory
  uint64_t tensor_bytes = 0;
  std::vector<std::string> notes;
};

// Throws InputError (bad input file, unusable directory, failed writes; temporary files removed).
HfExportResult export_hf(const std::string& param_file, const std::string& dir, const HfExportOptions& options,
                         const std::function<void(int64_t, int64_t)>& progress);

// Copies `from` to DIR/name atomically (temporary name, fsync, rename). Throws InputError.
void copy_file_atomically(const std::string& from, const std::string& dir, const std::string& name);

}  // namespace rw::io
