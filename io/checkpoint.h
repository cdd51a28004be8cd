// checkpoint.h: one HDF5 file per checkpoint, written collectively (each rank writes its
// hyperslabs of every global tensor) and atomically (temporary name, flushed, fsync'd, closed,
// renamed). Layout (format version 2):
//   /params/<name>, /optim/m/<name>, /optim/v/<name>   float32, full global shapes, each with a
//                                                       "checksum" attribute
//   /optim attribute adam_step                          AdamW steps the moments have taken (bias
//                                                       correction continues from it)
//   /rng/seed, /data/cursor                             uint64 scalars
//   root attributes: format, format_version, the model config (LlamaConfig names), step,
//   tokens_seen, global_batch_tokens, stage, stage_index, seq_len, rope_theta, layout,
//   world_size, dp, sp, run_id, ringworld_version, git_commit, command_line, and
//   state_record + state_record_crc32: every value above except the tensors (attributes,
//   adam_step, seed, cursor) as one JSON text and its CRC-32. Loading verifies the record's CRC,
//   then compares each value with its record entry, so a changed attribute is named.
// Format version 1 (before adam_step and the record) is still read: adam_step is then taken to
// be the checkpoint's step (what the run that wrote it used: it restarted the count at each
// stage) and adam_step_known is false, so callers can say so.
// Global tensors make checkpoints reshardable: any grid loads any checkpoint. The tensors come
// from a ShardedTensors (sharded_tensors.h: core's device shards, staged through host memory).
// Free of <hdf5.h>.
#pragma once
#include <cstdint>
#include <string>

#include "src/common/llama_config.h"
#include "io/sharded_tensors.h"

namespace rw::io {

constexpr const char* kCheckpointFormat = "ringworld-checkpoint";
constexpr int kCheckpointVersion = 2;
constexpr int kOldestReadableCheckpointVersion = 1;

struct CheckpointState {
  std::string stage;          // stage name ("" outside a staged run)
  int64_t stage_index = 0;
  int64_t step = 0;           // optimizer steps completed in the stage
  int64_t tokens_seen = 0;    // tokens trained on in the stage
  int64_t global_batch_tokens = 0;  // tokens per step of the stage (0: unknown, format 1)
  int64_t seq_len = 0;
  std::string layout;
  uint64_t data_cursor = 0;   // position of the data stream (resume continues exactly there)
  uint64_t seed = 0;
  int64_t world_size = 0, dp = 0, sp = 0;  // grid at save (informational: any grid can load)
  int64_t adam_step = 0;      // AdamW steps taken by the moments (across carried stages)
  bool adam_step_known = true;  // false when read from a format-1 file (adam_step = step then)
  std::string run_id;         // the run that wrote it (run.ini's run-id; "" outside a run)
  std::string command_line;   // of the invocation that wrote it
  // Filled by save_checkpoint from the build; read back by read_checkpoint_state.
  std::string ringworld_version, git_commit;
  int64_t format_version = kCheckpointVersion;
};

// Collective and atomic.
void save_checkpoint(const std::string& path, const model::LlamaConfig& config, ShardedTensors& params,
                     const CheckpointState& state);

// True when the file has a format attribute, i.e. claims to be a checkpoint (read_checkpoint_state
// then says whether it is a valid one); false for plain parameter files, which have none. Throws InputError if the
// file cannot be opened as HDF5.
bool is_checkpoint_file(const std::string& path);

// Reads and checks the root attributes (format, version, state record, config). Throws
// InputError naming the file and the attribute that is missing, malformed or changed.
CheckpointState read_checkpoint_state(const std::string& path, model::LlamaConfig* config);

// This process alone (no collective; serial HDF5): the run_id attribute of a checkpoint, "" when
// it has none (format 1) or cannot be read. Used to prune only the run's own files.
std::string read_checkpoint_run_id(const std::string& path);

// Collective: loads this rank's shards of /params (and of /optim/m, /optim/v if with_optimizer,
// else zeroes the moments), verifying every tensor's shape and checksum. Throws InputError
// naming the tensor. Before reading, each rank asks the kernel to read ahead (posix_fadvise
// WILLNEED) only the byte ranges of its own slabs of each tensor. Test hook: with
// RINGWORLD_PREFETCH_REPORT set, each rank prints those ranges to stderr.
void load_checkpoint(const std::string& path, ShardedTensors& params, bool with_optimizer);

// A readable listing of the root attributes and of every dataset with its shape and type.
// Throws InputError if the file cannot be read as HDF5.
std::string describe_checkpoint(const std::string& path);

}  // namespace rw::io
