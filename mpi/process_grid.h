// process_grid.h: world = dp x sp. The sp ranks of one dp group form a ring and share one
// sequence; the dp groups take different sequences of the global batch. World rank
// r = dp_rank * sp + sp_rank, so the ranks of a ring are consecutive (neighbours on a node).
// Parameters are sharded over all ranks of the grid (FSDP): allgather and reduce-scatter run
// over the whole grid. Free of <mpi.h>.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "mpi/communicator.h"
#include "mpi/ring_exchange.h"

namespace rw::mpi {

class ProcessGrid {
 public:
  // Over the world; throws InputError unless dp * sp == world size (dp, sp >= 1).
  ProcessGrid(int dp, int sp, double ring_timeout_s = 900.0);
  // A 1 x 1 grid of this process alone (reference runs inside a multi-rank job).
  static std::unique_ptr<ProcessGrid> self();

  int dp() const { return dp_; }
  int sp() const { return sp_; }
  int dp_rank() const { return rank_ / sp_; }
  int sp_rank() const { return rank_ % sp_; }
  int rank() const { return rank_; }
  int size() const { return dp_ * sp_; }
  RingExchange& ring() { return *ring_; }

  // Over all ranks of the grid. full holds size() * shard_count floats, rank-major.
  void allgather(const float* shard, std::size_t shard_count, float* full);
  // shard = sum over ranks of full[rank * shard_count ...] (each rank gets its own block).
  void reduce_scatter_sum(const float* full, float* shard, std::size_t shard_count);
  void allreduce_sum(double* values, int count);
  double allreduce_sum(double value);
  void allreduce_sum_u64(uint64_t* values, int count);  // wraps modulo 2^64
  void barrier();

 private:
  ProcessGrid(Communicator all, int dp, int sp, double ring_timeout_s);
  Communicator all_;
  int dp_ = 1, sp_ = 1, rank_ = 0;
  std::unique_ptr<RingExchange> ring_;
};

}  // namespace rw::mpi
