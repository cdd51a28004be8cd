// sharded_tensors.h: what io/ reads and writes when it saves or loads parameters: named global
// tensors (Hugging Face names and shapes), of which this rank holds a flat element range, and
// host staging of those ranges. core implements it (train::FsdpParams keeps its shards in device
// memory and stages them through host buffers here); io/ never sees core's types. Each
// field (weights, gradients, AdamW moments) is staged separately.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::mpi {
class ProcessGrid;
}

namespace rw::io {

enum class ShardField { weights, grads, adam_m, adam_v };

// One global tensor and the flat element range [begin, end) of it that this rank holds
// (row-major order; empty when begin == end).
struct TensorPart {
  std::string name;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;
};

class ShardedTensors {
 public:
  virtual ~ShardedTensors() = default;
  // Every tensor, in the same order on every rank (collective I/O visits them in this order).
  virtual std::vector<TensorPart> tensor_parts() const = 0;
  // The field's held elements in host memory: one pointer per part ((end - begin) floats, in
  // tensor order), valid until the next staging call. Waits for the device work that writes
  // the field.
  virtual std::vector<const float*> stage_out(ShardField field) = 0;
  // Host buffers to fill (one per part), then commit_in copies them into the field.
  virtual std::vector<float*> stage_in(ShardField field) = 0;
  virtual void commit_in(ShardField field) = 0;
  // The staging buffers may go (after the last stage_out of a save).
  virtual void end_staging() {}
  // The ranks that hold the tensors between them (checksums are summed over them).
  virtual mpi::ProcessGrid& grid() = 0;
};

}  // namespace rw::io
