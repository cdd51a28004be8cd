// async_collectives.cpp
#include "mpi/async_collectives.h"

#include <mpi.h>

#include <algorithm>
#include <vector>

#include "mpi/communicator_impl.h"
#include "mpi/mpi_check.h"
#include "mpi/runtime.h"
#include "src/common/activity.h"
#include "src/common/timer.h"
#include "src/common/transfer_limits.h"

namespace rw::mpi {

struct AsyncCollectives::State {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
  double timeout_s = 0;
  std::vector<std::vector<MPI_Request>> requests;  // per slot: the pieces' requests
  std::vector<char> active;
  std::vector<int> free_slots;
  std::uint64_t calls = 0;

  int take_slot() {
    if (free_slots.empty()) {
      requests.emplace_back();
      active.push_back(0);
      return static_cast<int>(requests.size()) - 1;
    }
    const int slot = free_slots.back();
    free_slots.pop_back();
    return slot;
  }
  bool test(int slot) {
    int done = 0;
    auto& parts = requests[slot];
    RW_MPI_CHECK(MPI_Testall(static_cast<int>(parts.size()), parts.data(), &done, MPI_STATUSES_IGNORE));
    return done != 0;
  }
  void release(int slot) {
    requests[slot].clear();
    active[slot] = 0;
    free_slots.push_back(slot);
  }
};

AsyncCollectives::AsyncCollectives(ProcessGrid& grid, double timeout_s)
    : state_(std::make_unique<State>()), grid_(grid) {
  RW_MPI_CHECK(MPI_Comm_dup(grid.communicator().impl().comm, &state_->comm));
  RW_MPI_CHECK(MPI_Comm_set_errhandler(state_->comm, MPI_ERRORS_RETURN));
  RW_MPI_CHECK(MPI_Comm_rank(state_->comm, &state_->rank));
  RW_MPI_CHECK(MPI_Comm_size(state_->comm, &state_->size));
  state_->timeout_s = timeout_s;
}

AsyncCollectives::~AsyncCollectives() {
  for (auto& parts : state_->requests)
    for (MPI_Request& r : parts)
      if (r != MPI_REQUEST_NULL) MPI_Wait(&r, MPI_STATUS_IGNORE);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && state_->comm != MPI_COMM_NULL) MPI_Comm_free(&state_->comm);
}

int AsyncCollectives::size() const { return state_->size; }
int AsyncCollectives::rank() const { return state_->rank; }
std::uint64_t AsyncCollectives::calls() const { return state_->calls; }

std::size_t AsyncCollectives::piece_elems() const {
  return collective_piece_elems(grid_.chunk_bytes(), static_cast<std::size_t>(state_->size), sizeof(float));
}

AsyncCollectives::Request AsyncCollectives::post_allgather(const float* shard, std::size_t shard_count, float* full) {
  return post_allgather_bytes(shard, shard_count, full, sizeof(float));
}

AsyncCollectives::Request AsyncCollectives::post_allgather(const std::uint16_t* shard, std::size_t shard_count,
                                                           std::uint16_t* full) {
  return post_allgather_bytes(shard, shard_count, full, sizeof(std::uint16_t));
}

AsyncCollectives::Request AsyncCollectives::post_allgather_bytes(const void* shard_in, std::size_t shard_count,
                                                                 void* full_out, std::size_t elem_bytes) {
  const MPI_Datatype elem = elem_bytes == sizeof(float) ? MPI_FLOAT : MPI_UINT16_T;
  const char* shard = static_cast<const char*>(shard_in);
  char* full = static_cast<char*>(full_out);
  const int slot = state_->take_slot();
  auto& parts = state_->requests[slot];
  const std::size_t piece =
      collective_piece_elems(grid_.chunk_bytes(), static_cast<std::size_t>(state_->size), elem_bytes);
  if (shard_count <= piece) {
    parts.assign(1, MPI_REQUEST_NULL);
    ++state_->calls;
    RW_MPI_CHECK(MPI_Iallgather(shard, static_cast<int>(shard_count), elem, full, static_cast<int>(shard_count),
                                elem, state_->comm, &parts[0]));
  } else {
    // Piece [offset, offset + n) of every rank's block lands every shard_count floats: one
    // element of a resized type (n floats, extent shard_count floats) per rank. A datatype may
    // be freed while an operation using it is pending (it is released when that completes).
    const std::size_t n_pieces = piece_count(shard_count, piece);
    parts.assign(n_pieces, MPI_REQUEST_NULL);
    for (std::size_t p = 0; p < n_pieces; ++p) {
      const std::size_t offset = p * piece;
      const int n = static_cast<int>(std::min(piece, shard_count - offset));
      MPI_Datatype block, strided;
      RW_MPI_CHECK(MPI_Type_contiguous(n, elem, &block));
      RW_MPI_CHECK(MPI_Type_create_resized(block, 0, static_cast<MPI_Aint>(shard_count * elem_bytes), &strided));
      RW_MPI_CHECK(MPI_Type_commit(&strided));
      ++state_->calls;
      RW_MPI_CHECK(MPI_Iallgather(shard + offset * elem_bytes, n, elem, full + offset * elem_bytes, 1, strided,
                                  state_->comm, &parts[p]));
      RW_MPI_CHECK(MPI_Type_free(&strided));
      RW_MPI_CHECK(MPI_Type_free(&block));
    }
  }
  state_->active[slot] = 1;
  return slot;
}

AsyncCollectives::Request AsyncCollectives::post_reduce_scatter_sum(const float* packed, float* shard,
                                                                    std::size_t shard_count) {
  const int slot = state_->take_slot();
  auto& parts = state_->requests[slot];
  const std::size_t piece = piece_elems(), ranks = static_cast<std::size_t>(state_->size);
  const std::size_t n_pieces = shard_count <= piece ? 1 : piece_count(shard_count, piece);
  parts.assign(n_pieces, MPI_REQUEST_NULL);
  for (std::size_t p = 0; p < n_pieces; ++p) {
    const std::size_t offset = p * piece, n = n_pieces == 1 ? shard_count : std::min(piece, shard_count - offset);
    ++state_->calls;
    RW_MPI_CHECK(MPI_Ireduce_scatter_block(packed + offset * ranks, shard + offset, static_cast<int>(n), MPI_FLOAT,
                                           MPI_SUM, state_->comm, &parts[p]));
  }
  state_->active[slot] = 1;
  return slot;
}

bool AsyncCollectives::test(Request& request) {
  if (request == kNoRequest) return true;
  RW_CHECK(request >= 0 && request < static_cast<int>(state_->requests.size()) && state_->active[request],
           "test of an unknown collective request");
  if (!state_->test(request)) return false;
  state_->release(request);
  request = kNoRequest;
  return true;
}

void AsyncCollectives::wait(Request& request, const std::string& what) {
  if (request == kNoRequest) return;
  RW_CHECK(request >= 0 && request < static_cast<int>(state_->requests.size()) && state_->active[request],
           "wait on an unknown collective request");
  bool done = state_->test(request);
  if (!done) {
    activity::Doing doing("waiting for the " + what + " over the grid (" + std::to_string(state_->size) + " ranks)");
    const double start = wall_seconds();
    while (!done) {
      done = state_->test(request);
      if (!done && state_->timeout_s > 0 && wall_seconds() - start > state_->timeout_s)
        RW_FAIL("rank " + std::to_string(world_rank()) + " on " + host_name() + ": no progress for " +
                std::to_string(state_->timeout_s) + " s waiting for the " + what);
    }
  }
  state_->release(request);
  request = kNoRequest;
}

void AsyncCollectives::progress() {
  for (std::size_t slot = 0; slot < state_->requests.size(); ++slot)
    if (state_->active[slot]) state_->test(static_cast<int>(slot));
}

}  // namespace rw::mpi
