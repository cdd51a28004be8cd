// process_grid.cpp
#include "mpi/process_grid.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "mpi/communicator_impl.h"
#include "mpi/mpi_check.h"
#include "mpi/node_topology.h"
#include "mpi/runtime.h"
#include "src/common/activity.h"
#include "src/common/input_error.h"
#include "src/common/transfer_limits.h"

namespace rw::mpi {

namespace {

void check_grid(int dp, int sp) {
  const int world = world_size();
  if (dp < 1 || sp < 1 || dp * sp != world)
    throw InputError("process grid dp " + std::to_string(dp) + " x sp " + std::to_string(sp) + " = " +
                     std::to_string(dp * sp) + " does not match the " + std::to_string(world) + " MPI ranks");
}

// Host names of every world rank (collective), labelled with the fake node when faked.
std::vector<std::string> node_labels(const std::vector<int>& node_of) {
  constexpr int kLen = 64;
  std::string mine = host_name();
  mine.resize(kLen - 1);
  std::vector<char> all(static_cast<std::size_t>(node_of.size()) * kLen, 0);
  RW_MPI_CHECK(MPI_Allgather(mine.c_str(), kLen, MPI_CHAR, all.data(), kLen, MPI_CHAR, MPI_COMM_WORLD));
  const bool fake = std::getenv("RINGWORLD_FAKE_NODES") != nullptr;
  std::vector<std::string> labels(node_of.size());
  for (std::size_t r = 0; r < node_of.size(); ++r) {
    labels[r] = std::string(all.data() + r * kLen);
    if (fake) labels[r] += "/fake-node-" + std::to_string(node_of[r]);
  }
  return labels;
}

// The grid's communicator: world ranks reordered so grid positions follow the nodes.
Communicator topology_ordered_world(int dp, int sp, std::vector<int>& node_of, std::vector<int>& order) {
  check_grid(dp, sp);
  if (node_of.empty()) node_of = node_of_each_rank();
  RW_CHECK(static_cast<int>(node_of.size()) == world_size(), "node map does not cover the world");
  order = ring_order(node_of);
  const int me = world_rank();
  const int position = static_cast<int>(std::find(order.begin(), order.end(), me) - order.begin());
  return Communicator::world().split(0, position);
}

}  // namespace

ProcessGrid::ProcessGrid(int dp, int sp, double ring_timeout_s, std::vector<int> node_of) {
  all_ = std::make_unique<Communicator>(topology_ordered_world(dp, sp, node_of, order_));
  dp_ = dp;
  sp_ = sp;
  rank_ = all_->rank();
  ring_timeout_s_ = ring_timeout_s;
  RW_CHECK(order_[rank_] == world_rank(), "grid position does not match the ring order");
  ring_report_ = "ring order (dp " + std::to_string(dp) + " x sp " + std::to_string(sp) + ", world ranks grouped by node):\n" +
                 describe_ring_order(order_, node_of, node_labels(node_of), sp);
  Communicator ring_comm = all_->split(dp_rank(), sp_rank());
  ring_ = std::make_unique<RingExchange>(ring_comm, ring_timeout_s);
  agree_chunk_bytes();
}

ProcessGrid::ProcessGrid(Communicator all, int dp, int sp, double ring_timeout_s)
    : all_(std::make_unique<Communicator>(std::move(all))), dp_(dp), sp_(sp), rank_(all_->rank()),
      ring_timeout_s_(ring_timeout_s) {
  order_ = {world_rank()};
  Communicator ring_comm = all_->split(dp_rank(), sp_rank());
  ring_ = std::make_unique<RingExchange>(ring_comm, ring_timeout_s);
  agree_chunk_bytes();
}

void ProcessGrid::agree_chunk_bytes() {
  unsigned long long mine = mpi_chunk_bytes(), agreed = mine;
  RW_MPI_CHECK(MPI_Allreduce(&mine, &agreed, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, all_->impl().comm));
  chunk_bytes_ = static_cast<std::size_t>(agreed);
}

void ProcessGrid::set_chunk_bytes(std::size_t n_bytes) {
  RW_CHECK(n_bytes >= 1 && n_bytes <= kMaxBytesPerMpiCall,
           "collective chunk of " + std::to_string(n_bytes) + " bytes is outside 1.." + std::to_string(kMaxBytesPerMpiCall));
  chunk_bytes_ = n_bytes;
}

std::unique_ptr<ProcessGrid> ProcessGrid::self() {
  return std::unique_ptr<ProcessGrid>(new ProcessGrid(Communicator::self(), 1, 1, 900.0));
}

void ProcessGrid::allgather(const float* shard, std::size_t shard_count, float* full, const char* purpose) {
  activity::Doing doing("in an allgather of " + std::to_string(shard_count) + " floats per rank over the grid (" +
                        purpose + ")");
  const MPI_Comm comm = all_->impl().comm;
  const std::size_t piece = collective_piece_elems(chunk_bytes_, static_cast<std::size_t>(size()), sizeof(float));
  if (shard_count <= piece) {
    ++collective_calls_;
    RW_MPI_CHECK(MPI_Allgather(shard, static_cast<int>(shard_count), MPI_FLOAT, full, static_cast<int>(shard_count),
                               MPI_FLOAT, comm));
    return;
  }
  // Piece [offset, offset + n) of every rank's block: rank r's elements land at
  // full[r * shard_count + offset ...], a block of n floats every shard_count floats, which one
  // element of a resized type (n floats, extent shard_count floats) per rank describes.
  for (std::size_t offset = 0; offset < shard_count; offset += piece) {
    const int n = static_cast<int>(std::min(piece, shard_count - offset));
    MPI_Datatype block, strided;
    RW_MPI_CHECK(MPI_Type_contiguous(n, MPI_FLOAT, &block));
    RW_MPI_CHECK(MPI_Type_create_resized(block, 0, static_cast<MPI_Aint>(shard_count * sizeof(float)), &strided));
    RW_MPI_CHECK(MPI_Type_commit(&strided));
    ++collective_calls_;
    RW_MPI_CHECK(MPI_Allgather(shard + offset, n, MPI_FLOAT, full + offset, 1, strided, comm));
    RW_MPI_CHECK(MPI_Type_free(&strided));
    RW_MPI_CHECK(MPI_Type_free(&block));
  }
}

void ProcessGrid::reduce_scatter_sum(const float* full, float* shard, std::size_t shard_count) {
  activity::Doing doing("in a reduce-scatter of " + std::to_string(shard_count) + " floats per rank over the grid (FSDP gradients)");
  const MPI_Comm comm = all_->impl().comm;
  const std::size_t ranks = static_cast<std::size_t>(size());
  const std::size_t piece = collective_piece_elems(chunk_bytes_, ranks, sizeof(float));
  if (shard_count <= piece) {
    ++collective_calls_;
    RW_MPI_CHECK(MPI_Reduce_scatter_block(full, shard, static_cast<int>(shard_count), MPI_FLOAT, MPI_SUM, comm));
    return;
  }
  // Piece [offset, offset + n) of every rank's block, packed rank-major into one buffer of at
  // most a chunk (MPI's predefined reductions need contiguous data), reduced and scattered.
  std::vector<float> packed(ranks * piece);
  for (std::size_t offset = 0; offset < shard_count; offset += piece) {
    const std::size_t n = std::min(piece, shard_count - offset);
    for (std::size_t r = 0; r < ranks; ++r)
      std::copy_n(full + r * shard_count + offset, n, packed.data() + r * n);
    ++collective_calls_;
    RW_MPI_CHECK(MPI_Reduce_scatter_block(packed.data(), shard + offset, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm));
  }
}

namespace {

// In-place sum over comm in calls of at most chunk_bytes (at least one element each).
template <class T>
void allreduce_sum_in_pieces(T* values, std::size_t count, MPI_Datatype type, MPI_Comm comm, std::size_t chunk_bytes,
                             std::uint64_t& calls) {
  const std::size_t piece = std::max<std::size_t>(1, chunk_bytes / sizeof(T));
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(piece, count - offset);
    ++calls;
    RW_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values + offset, static_cast<int>(n), type, MPI_SUM, comm));
    offset += n;
  } while (offset < count);
}

}  // namespace

void ProcessGrid::allreduce_sum(double* values, int count) {
  activity::Doing doing("in an allreduce of " + std::to_string(count) + " double(s) over the grid");
  allreduce_sum_in_pieces(values, static_cast<std::size_t>(count), MPI_DOUBLE, all_->impl().comm, chunk_bytes_,
                          collective_calls_);
}

double ProcessGrid::allreduce_sum(double value) {
  allreduce_sum(&value, 1);
  return value;
}

void ProcessGrid::allreduce_sum_u64(uint64_t* values, int count) {
  activity::Doing doing("in an allreduce of " + std::to_string(count) + " counter(s) over the grid");
  allreduce_sum_in_pieces(values, static_cast<std::size_t>(count), MPI_UINT64_T, all_->impl().comm, chunk_bytes_,
                          collective_calls_);
}

void ProcessGrid::barrier() {
  activity::Doing doing("in a barrier over the grid");
  RW_MPI_CHECK(MPI_Barrier(all_->impl().comm));
}

}  // namespace rw::mpi
