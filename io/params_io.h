// params_io.h: model parameters in HDF5 as global tensors under /params/<Hugging Face name>
// (float32, full shapes), the model config as root attributes with LlamaConfig's names. Each
// rank reads and writes only the elements it holds (ShardedTensors: a flat range of each tensor
// maps to at most three hyperslab blocks), staged through host memory, so no rank ever holds a
// whole tensor.
// Free of <hdf5.h>.
#pragma once
#include <string>
#include <vector>

#include "src/common/llama_config.h"
#include "io/sharded_tensors.h"

namespace rw::io {

// Reads the config attributes; throws InputError naming the file and a missing or bad attribute.
model::LlamaConfig read_model_config(const std::string& path);

// Collective. Checks that every tensor exists with dtype float32 and the config's shape (one
// InputError naming the tensor otherwise; extra, unknown /params entries are refused too) and
// reads this rank's part of each into the weights.
void read_param_shards(const std::string& path, ShardedTensors& params);

// What to write besides the parameters.
struct TensorGroup {
  std::string group;  // "/params", "/grads", ...
  enum class Source { weights, grads } source = Source::weights;
};

// Collective and atomic (path.tmp, renamed when complete): root attributes (config and
// `extra_attributes`), then each group's tensors from this rank's parts.
void write_sharded_tensors(const std::string& path, const model::LlamaConfig& config, ShardedTensors& params,
                           const std::vector<TensorGroup>& groups,
                           const std::vector<std::pair<std::string, double>>& extra_attributes = {});

}  // namespace rw::io
