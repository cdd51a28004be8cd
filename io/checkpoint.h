// checkpoint.h: one HDF5 file per checkpoint, written collectively (each rank writes its
// hyperslabs of every global tensor) and atomically (temporary name, flushed, fsync'd, closed,
// renamed). Layout:
//   /params/<name>, /optim/m/<name>, /optim/v/<name>   float32, full global shapes, each with a
//                                                       "checksum" attribute
//   /rng/seed, /data/cursor                             uint64 scalars
//   root attributes: format, format_version, the model config (LlamaConfig names), step,
//   tokens_seen, stage, stage_index, seq_len, rope_theta, layout, world_size, dp, sp
// Global tensors make checkpoints reshardable: any grid loads any checkpoint. Free of <hdf5.h>.
#pragma once
#include <cstdint>
#include <string>

#include "src/model/llama_config.h"
#include "src/train/fsdp_params.h"

namespace rw::io {

constexpr const char* kCheckpointFormat = "ringworld-checkpoint";
constexpr int kCheckpointVersion = 1;

struct CheckpointState {
  std::string stage;          // stage name ("" outside a staged run)
  int64_t stage_index = 0;
  int64_t step = 0;           // optimizer steps completed in the stage
  int64_t tokens_seen = 0;    // tokens trained on in the stage
  int64_t seq_len = 0;
  std::string layout;
  uint64_t data_cursor = 0;   // position of the data stream (resume continues exactly there)
  uint64_t seed = 0;
  int64_t world_size = 0, dp = 0, sp = 0;  // grid at save (informational: any grid can load)
};

// Collective and atomic.
void save_checkpoint(const std::string& path, const model::LlamaConfig& config, train::FsdpParams& params,
                     const CheckpointState& state);

// True when the file has a format attribute, i.e. claims to be a checkpoint (read_checkpoint_state
// then says whether it is a valid one); false for plain parameter files, which have none. Throws InputError if the
// file cannot be opened as HDF5.
bool is_checkpoint_file(const std::string& path);

// Reads and checks the root attributes (format, version, config). Throws InputError.
CheckpointState read_checkpoint_state(const std::string& path, model::LlamaConfig* config);

// Collective: loads this rank's shards of /params (and of /optim/m, /optim/v if with_optimizer,
// else zeroes the moments), verifying every tensor's shape and checksum. Throws InputError
// naming the tensor.
void load_checkpoint(const std::string& path, train::FsdpParams& params, bool with_optimizer);

// A readable listing of the root attributes and of every dataset with its shape and type.
// Throws InputError if the file cannot be read as HDF5.
std::string describe_checkpoint(const std::string& path);

}  // namespace rw::io
