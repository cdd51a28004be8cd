// param_file_writer.h: a parameter file written by one process, one tensor at a time, for the
// importers: the same file `ringworld train --save-params` writes (root attributes with
// LlamaConfig's names as int64/float64, /params/<Hugging Face name> float32 at full shape, each
// with the checkpoints' "checksum" attribute), so `forward`, `train --init-params` and `ckpt`
// read it like any other; plus optional attributes (the tokenizer, max_position_embeddings, ...)
// and optional datasets outside /params (e.g. /vision/...), which those commands ignore.
// Atomic: written as PATH.tmp (registered for removal on a fatal error, removed if the writer is
// destroyed unfinished), renamed to PATH by finish().
#pragma once
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "src/common/llama_config.h"

namespace rw::io {

class ParamFileWriter {
 public:
  // Creates PATH.tmp and writes the config attributes. Throws InputError if it cannot be created.
  ParamFileWriter(const std::string& path, const model::LlamaConfig& config);
  ~ParamFileWriter();
  ParamFileWriter(const ParamFileWriter&) = delete;
  ParamFileWriter& operator=(const ParamFileWriter&) = delete;

  void add_attribute(const std::string& name, int64_t value);
  void add_attribute(const std::string& name, const std::string& value);

  // /params/<name>: one of the config's tensors (any order, each once), its count() floats.
  void write_param(const std::string& name, const float* data);
  // Another float32 dataset, e.g. "/vision/vte.weight" (intermediate groups created).
  void write_extra(const std::string& dataset, const std::vector<int64_t>& shape, const float* data);

  // Checks every parameter was written, closes, syncs and renames. Throws InputError.
  void finish();

 private:
  void write_dataset(const std::string& dataset, const std::vector<int64_t>& shape, const float* data);

  std::string path_, tmp_;
  model::LlamaConfig config_;
  std::vector<model::TensorSpec> expected_;
  std::set<std::string> written_;
  int64_t file_ = -1;  // hid_t (kept out of this header)
};

}  // namespace rw::io
