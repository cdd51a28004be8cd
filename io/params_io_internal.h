// params_io_internal.h: parameter-file pieces for other io/ writers (includes <hdf5.h>).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "io/h5_file.h"
#include "src/common/llama_config.h"
#include "io/sharded_tensors.h"

namespace rw::io {

// Collective: the config as root attributes with LlamaConfig's names, plus extras (float64).
void write_config_attributes(H5File& file, const model::LlamaConfig& config,
                             const std::vector<std::pair<std::string, double>>& extra_attributes);

// Collective: group/<name> for every tensor, full global shape, from this rank's part of
// `from` (staged to host by `tensors`); with checksums, each dataset gets a "checksum" attribute (tensor_checksum_part summed
// over all ranks: order-independent, so any later sharding can verify it).
void write_tensor_group(H5File& file, ShardedTensors& tensors, const std::string& group, ShardField from,
                        bool with_checksums);

// Collective: validates group/<name> for every tensor (present, float32, the expected shape;
// nothing unknown in the group) and reads this rank's parts into `into` (through host staging); optionally verifies
// every tensor's checksum. Throws InputError naming the tensor.
void read_tensor_group(const H5File& file, ShardedTensors& tensors, const std::string& group, ShardField into,
                       bool verify_checksums);

// Checksum contribution of elements [begin, end) of a tensor (values[0] is element begin).
uint64_t tensor_checksum_part(const float* values, int64_t begin, int64_t end);

bool read_attribute(hid_t object, const char* name, hid_t mem_type, void* out);
void write_attribute(hid_t object, const std::string& name, hid_t file_type, hid_t mem_type, const void* value);

}  // namespace rw::io
