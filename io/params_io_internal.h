// params_io_internal.h: parameter-file pieces for other io/ writers (includes <hdf5.h>).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "io/h5_file.h"
#include "src/model/llama_config.h"
#include "src/train/fsdp_params.h"

namespace rw::io {

// Collective: the config as root attributes with LlamaConfig's names, plus extras (float64).
void write_config_attributes(H5File& file, const model::LlamaConfig& config,
                             const std::vector<std::pair<std::string, double>>& extra_attributes);

// Collective: group/<name> for every parameter, full global shape, from this rank's weight or
// gradient shards.
void write_tensor_group(H5File& file, train::FsdpParams& params, const std::string& group, bool from_grads);

}  // namespace rw::io
