// transfer_plan.h: the largest transfers one rank makes in a training step and in a checkpoint,
// and how many MPI or HDF5 calls each takes: one call moves at most kMaxBytesPerMpiCall or
// kMaxBytesPerH5Call (src/common/transfer_limits.h, both 1 GiB), larger ones are split as the
// code splits them (mpi/ring_exchange.cpp, mpi/process_grid.cpp, io/params_io.cpp):
//   ring     K|V of the shard in hand (2 x sequences x tokens per rank x kv_width fp32) per hop,
//            and in the backward the dK|dV accumulator of the same size: pieces of <= a chunk.
//   FSDP     all-gather and reduce-scatter of the largest parameter unit: calls of at most a
//            chunk over all ranks together (ranks x piece floats; at least one float per rank).
//   checkpoint  each rank writes its part of each tensor (the part of its shard of the unit
//            that falls in the tensor) with independent HDF5 writes of at most a chunk.
// Pure.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "src/common/transfer_limits.h"
#include "src/plan/train_shape.h"

namespace rw::plan {

struct TransferItem {
  std::string name;
  std::string via;           // "MPI point-to-point", "MPI collective", "HDF5 (MPI-IO)"
  double n_bytes = 0;        // what the transfer moves for one rank (collectives: all ranks' blocks)
  double limit_bytes = 0;    // the most one call moves
  double calls = 0;          // calls it takes (1: unsplit)
};

struct TransferPlan {
  std::vector<TransferItem> items;
  // The largest MPI message or collective call of the step before splitting (an item of items).
  std::size_t largest = 0;
};

TransferPlan plan_transfers(const TrainShape& shape, std::size_t mpi_limit_bytes = kMaxBytesPerMpiCall,
                            std::size_t h5_limit_bytes = kMaxBytesPerH5Call);

}  // namespace rw::plan
