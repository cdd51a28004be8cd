// process_grid.cpp
#include "mpi/process_grid.h"

#include <climits>
#include <string>

#include "mpi/communicator_impl.h"
#include "mpi/mpi_check.h"
#include "mpi/runtime.h"
#include "src/common/input_error.h"

namespace rw::mpi {

namespace {
Communicator checked_world(int dp, int sp) {
  const int world = world_size();
  if (dp < 1 || sp < 1 || dp * sp != world)
    throw InputError("process grid dp " + std::to_string(dp) + " x sp " + std::to_string(sp) + " = " +
                     std::to_string(dp * sp) + " does not match the " + std::to_string(world) + " MPI ranks");
  return Communicator::world();
}
}  // namespace

ProcessGrid::ProcessGrid(int dp, int sp, double ring_timeout_s)
    : ProcessGrid(checked_world(dp, sp), dp, sp, ring_timeout_s) {}

ProcessGrid::ProcessGrid(Communicator all, int dp, int sp, double ring_timeout_s)
    : all_(std::move(all)), dp_(dp), sp_(sp), rank_(all_.rank()) {
  Communicator ring_comm = all_.split(dp_rank(), sp_rank());
  ring_ = std::make_unique<RingExchange>(ring_comm, ring_timeout_s);
}

std::unique_ptr<ProcessGrid> ProcessGrid::self() {
  return std::unique_ptr<ProcessGrid>(new ProcessGrid(Communicator::self(), 1, 1, 900.0));
}

void ProcessGrid::allgather(const float* shard, std::size_t shard_count, float* full) {
  RW_CHECK(shard_count <= static_cast<std::size_t>(INT_MAX), "allgather shard too large for one MPI call");
  RW_MPI_CHECK(MPI_Allgather(shard, static_cast<int>(shard_count), MPI_FLOAT, full, static_cast<int>(shard_count),
                             MPI_FLOAT, all_.impl().comm));
}

void ProcessGrid::reduce_scatter_sum(const float* full, float* shard, std::size_t shard_count) {
  RW_CHECK(shard_count <= static_cast<std::size_t>(INT_MAX), "reduce-scatter shard too large for one MPI call");
  RW_MPI_CHECK(MPI_Reduce_scatter_block(full, shard, static_cast<int>(shard_count), MPI_FLOAT, MPI_SUM,
                                        all_.impl().comm));
}

void ProcessGrid::allreduce_sum(double* values, int count) {
  RW_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, all_.impl().comm));
}

double ProcessGrid::allreduce_sum(double value) {
  allreduce_sum(&value, 1);
  return value;
}

void ProcessGrid::allreduce_sum_u64(uint64_t* values, int count) {
  RW_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_UINT64_T, MPI_SUM, all_.impl().comm));
}

void ProcessGrid::barrier() { RW_MPI_CHECK(MPI_Barrier(all_.impl().comm)); }

}  // namespace rw::mpi
