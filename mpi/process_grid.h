// process_grid.h: world = dp x sp. The sp ranks of one dp group form a ring and share one
// sequence; the dp groups take different sequences of the global batch. Grid position
// p = dp_rank * sp + sp_rank, and positions follow the node topology (mpi/node_topology.h):
// ranks of one node are consecutive positions, so a ring crosses as few node boundaries as the
// placement allows, whatever the launcher's rank mapping. rank() is the grid position (FSDP
// shard index), not necessarily the world rank. Parameters are sharded over all ranks of the
// grid (FSDP): allgather and reduce-scatter run over the whole grid. Collectives record what
// they wait for (src/common/activity.h) for the watchdog. Collectives of any size: one whose
// call would move more than the chunk size in all (src/common/transfer_limits.h, 1 GiB) runs
// as several calls over pieces of each rank's block (every rank makes the same calls).
// Free of <mpi.h>.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mpi/communicator.h"
#include "mpi/ring_exchange.h"

namespace rw::mpi {

class ProcessGrid {
 public:
  // Over the world; throws InputError unless dp * sp == world size (dp, sp >= 1).
  // node_of (tests): node of each world rank as node_of_each_rank() returns it; empty: ask MPI.
  ProcessGrid(int dp, int sp, double ring_timeout_s = 900.0, std::vector<int> node_of = {});
  // A 1 x 1 grid of this process alone (reference runs inside a multi-rank job).
  static std::unique_ptr<ProcessGrid> self();

  int dp() const { return dp_; }
  int sp() const { return sp_; }
  int dp_rank() const { return rank_ / sp_; }
  int sp_rank() const { return rank_ % sp_; }
  int rank() const { return rank_; }
  int size() const { return dp_ * sp_; }
  RingExchange& ring() { return *ring_; }
  // The grid's communicator (all ranks; mpi/ and io/ reach its MPI handle).
  const Communicator& communicator() const { return *all_; }
  // Seconds a ring transfer may stall before the job ends (the grid's timeout).
  double ring_timeout_s() const { return ring_timeout_s_; }
  // Start-up report of the ring order (rings, their ranks by node, node crossings).
  const std::string& ring_order_report() const { return ring_report_; }
  // World rank at each grid position.
  const std::vector<int>& world_rank_of_position() const { return order_; }

  // The most bytes one collective call of this grid moves in all; chunk_bytes() starts as
  // rw::mpi_chunk_bytes(), agreed (the smallest) over the grid. set_chunk_bytes (tests: small
  // values exercise the splitting) must be called on every rank with the same value.
  std::size_t chunk_bytes() const { return chunk_bytes_; }
  void set_chunk_bytes(std::size_t n_bytes);
  // Collective calls made by allgather/reduce_scatter_sum/allreduce so far (tests).
  std::uint64_t collective_calls() const { return collective_calls_; }

  // Over all ranks of the grid. full holds size() * shard_count floats, rank-major.
  // `purpose` names it in hang reports (the watchdog's "where every rank is").
  void allgather(const float* shard, std::size_t shard_count, float* full, const char* purpose = "FSDP parameters");
  // shard = sum over ranks of full[rank * shard_count ...] (each rank gets its own block).
  void reduce_scatter_sum(const float* full, float* shard, std::size_t shard_count);
  void allreduce_sum(double* values, int count);
  double allreduce_sum(double value);
  void allreduce_sum_u64(uint64_t* values, int count);  // wraps modulo 2^64
  void barrier();

 private:
  ProcessGrid(Communicator all, int dp, int sp, double ring_timeout_s);
  void agree_chunk_bytes();
  std::unique_ptr<Communicator> all_;
  int dp_ = 1, sp_ = 1, rank_ = 0;
  std::size_t chunk_bytes_ = 0;
  double ring_timeout_s_ = 900.0;
  std::uint64_t collective_calls_ = 0;
  std::unique_ptr<RingExchange> ring_;
  std::vector<int> order_;
  std::string ring_report_;
};

}  // namespace rw::mpi
