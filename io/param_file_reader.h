// param_file_reader.h: one process reading a parameter file or a training checkpoint tensor by
// tensor (the exporter): optional root attributes, and /params/<name> as a whole float32 tensor,
// its shape checked and, where the dataset has the checkpoints' "checksum" attribute, verified.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/common/llama_config.h"

namespace rw::io {

class ParamFileReader {
 public:
  // Throws InputError if the file cannot be opened as HDF5.
  explicit ParamFileReader(const std::string& path);
  ~ParamFileReader();
  ParamFileReader(const ParamFileReader&) = delete;
  ParamFileReader& operator=(const ParamFileReader&) = delete;

  // The config attributes (LlamaConfig's names), validated. Throws InputError naming the file.
  model::LlamaConfig model_config() const;

  // A scalar root attribute: false when absent or of another kind.
  bool int_attribute(const std::string& name, int64_t* out) const;
  bool string_attribute(const std::string& name, std::string* out) const;

  // Whether a root-level link (group or dataset) of this name exists.
  bool has_link(const std::string& name) const;

  // The whole dataset (e.g. "/params/lm_head.weight"). Throws InputError naming the file and the
  // dataset when it is missing, not float32, not of `shape`, or fails its checksum.
  std::vector<float> read_tensor(const std::string& dataset, const std::vector<int64_t>& shape) const;

 private:
  std::string path_;
  int64_t file_ = -1;  // hid_t
};

}  // namespace rw::io
