// ring_exchange.cpp
#include "mpi/ring_exchange.h"

#include <mpi.h>

#include <algorithm>
#include <string>
#include <vector>

#include "mpi/communicator_impl.h"
#include "mpi/mpi_check.h"
#include "mpi/runtime.h"
#include "src/common/activity.h"
#include "src/common/transfer_limits.h"
#include "src/common/timer.h"

namespace rw::mpi {

struct RingExchange::State {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
  double timeout_s = 0;
  std::size_t chunk_bytes = kMaxBytesPerMpiCall;
  // Slot per handle: the MPI requests of the message's pieces (MPI_REQUEST_NULL once done).
  std::vector<std::vector<MPI_Request>> requests;
  std::vector<int> free_slots;
  std::vector<char> active;           // handle given out and not yet waited on
  std::uint64_t bytes_sent = 0, messages_sent = 0, mpi_messages_sent = 0;
  int world_prev = -1, world_next = -1;  // world ranks of the ring neighbours (for reports)

  int take_slot() {
    if (free_slots.empty()) {
      requests.emplace_back();
      active.push_back(0);
      return static_cast<int>(requests.size()) - 1;
    }
    int slot = free_slots.back();
    free_slots.pop_back();
    return slot;
  }

  // Posts the pieces of one message (MPI_Isend or MPI_Irecv of at most chunk_bytes each) into
  // a fresh slot, in order: the receiving end posts the same pieces in the same order.
  template <class Post>
  int post_pieces(std::size_t n_bytes, Post post) {
    const int slot = take_slot();
    std::vector<MPI_Request>& parts = requests[slot];
    const std::size_t n_pieces = std::max<std::size_t>(1, piece_count(n_bytes, chunk_bytes));
    parts.assign(n_pieces, MPI_REQUEST_NULL);
    for (std::size_t i = 0; i < n_pieces; ++i) {
      const std::size_t offset = i * chunk_bytes, length = std::min(chunk_bytes, n_bytes - offset);
      post(offset, static_cast<int>(length), &parts[i]);
    }
    active[slot] = 1;
    return slot;
  }

  // MPI_Testall over the pieces of a slot: true when all are complete (and freed).
  bool test(int slot) {
    std::vector<MPI_Request>& parts = requests[slot];
    int done = 0;
    RW_MPI_CHECK(MPI_Testall(static_cast<int>(parts.size()), parts.data(), &done, MPI_STATUSES_IGNORE));
    return done != 0;
  }
};

RingExchange::RingExchange(double wait_timeout_s) : RingExchange(Communicator::world(), wait_timeout_s) {}

RingExchange::RingExchange(const Communicator& comm, double wait_timeout_s, std::size_t chunk_bytes)
    : state_(std::make_unique<State>()) {
  RW_MPI_CHECK(MPI_Comm_dup(comm.impl().comm, &state_->comm));
  RW_MPI_CHECK(MPI_Comm_set_errhandler(state_->comm, MPI_ERRORS_RETURN));
  RW_MPI_CHECK(MPI_Comm_rank(state_->comm, &state_->rank));
  RW_MPI_CHECK(MPI_Comm_size(state_->comm, &state_->size));
  state_->timeout_s = wait_timeout_s;
  // Both ends of a message must split it alike: one chunk size for the whole ring.
  unsigned long long mine = chunk_bytes > 0 ? chunk_bytes : mpi_chunk_bytes(), agreed = mine;
  RW_CHECK(mine <= kMaxBytesPerMpiCall, "ring chunk of " + std::to_string(mine) + " bytes exceeds the MPI call limit");
  RW_MPI_CHECK(MPI_Allreduce(&mine, &agreed, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, state_->comm));
  state_->chunk_bytes = static_cast<std::size_t>(agreed);
  MPI_Group ring_group, world_group;
  RW_MPI_CHECK(MPI_Comm_group(state_->comm, &ring_group));
  RW_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world_group));
  const int neighbours[2] = {(state_->rank + state_->size - 1) % state_->size, (state_->rank + 1) % state_->size};
  int in_world[2] = {-1, -1};
  RW_MPI_CHECK(MPI_Group_translate_ranks(ring_group, 2, neighbours, world_group, in_world));
  RW_MPI_CHECK(MPI_Group_free(&ring_group));
  RW_MPI_CHECK(MPI_Group_free(&world_group));
  state_->world_prev = in_world[0];
  state_->world_next = in_world[1];
}

RingExchange::~RingExchange() {
  for (auto& parts : state_->requests)
    for (MPI_Request& r : parts)
      if (r != MPI_REQUEST_NULL) MPI_Wait(&r, MPI_STATUS_IGNORE);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && state_->comm != MPI_COMM_NULL) MPI_Comm_free(&state_->comm);
}

int RingExchange::rank() const { return state_->rank; }
int RingExchange::size() const { return state_->size; }
std::uint64_t RingExchange::bytes_sent() const { return state_->bytes_sent; }
std::uint64_t RingExchange::messages_sent() const { return state_->messages_sent; }
std::uint64_t RingExchange::mpi_messages_sent() const { return state_->mpi_messages_sent; }
std::size_t RingExchange::chunk_bytes() const { return state_->chunk_bytes; }
double RingExchange::timeout_s() const { return state_->timeout_s; }
std::string RingExchange::describe_neighbours() const {
  return " (ring neighbours: previous world rank " + std::to_string(state_->world_prev) + ", next " +
         std::to_string(state_->world_next) + ")";
}

RingTransport::Request RingExchange::post_send_next(const void* data, std::size_t n_bytes, int tag) {
  const int next = (state_->rank + 1) % state_->size;
  const char* bytes = static_cast<const char*>(data);
  const int slot = state_->post_pieces(n_bytes, [&](std::size_t offset, int length, MPI_Request* request) {
    RW_MPI_CHECK(MPI_Isend(bytes + offset, length, MPI_BYTE, next, tag, state_->comm, request));
  });
  state_->bytes_sent += n_bytes;
  state_->messages_sent += 1;
  state_->mpi_messages_sent += state_->requests[slot].size();
  return slot;
}

RingTransport::Request RingExchange::post_recv_prev(void* data, std::size_t n_bytes, int tag) {
  const int prev = (state_->rank + state_->size - 1) % state_->size;
  char* bytes = static_cast<char*>(data);
  return state_->post_pieces(n_bytes, [&](std::size_t offset, int length, MPI_Request* request) {
    RW_MPI_CHECK(MPI_Irecv(bytes + offset, length, MPI_BYTE, prev, tag, state_->comm, request));
  });
}

bool RingExchange::test(Request& request) {
  if (request == kNoRequest) return true;
  RW_CHECK(request >= 0 && request < static_cast<int>(state_->requests.size()) && state_->active[request],
           "test of an unknown ring request");
  if (!state_->test(request)) return false;
  state_->requests[request].clear();
  state_->active[request] = 0;
  state_->free_slots.push_back(request);
  request = kNoRequest;
  return true;
}

void RingExchange::wait(Request& request, const char* what) {
  if (request == kNoRequest) return;
  RW_CHECK(request >= 0 && request < static_cast<int>(state_->requests.size()) && state_->active[request],
           "wait on an unknown ring request");
  bool done = state_->test(request);
  if (!done) {
    // Recorded only when the wait is real: the watchdog then names what this rank waits for.
    activity::Doing doing(std::string("waiting for the ") + what + " (ring neighbours: previous world rank " +
                          std::to_string(state_->world_prev) + ", next " + std::to_string(state_->world_next) + ")");
    const double start = wall_seconds();
    while (!done) {
      done = state_->test(request);
      if (!done && state_->timeout_s > 0 && wall_seconds() - start > state_->timeout_s)
        RW_FAIL("rank " + std::to_string(world_rank()) + " on " + host_name() + ": no progress for " +
                std::to_string(state_->timeout_s) + " s waiting for the " + what + " (previous world rank " +
                std::to_string(state_->world_prev) + ", next " + std::to_string(state_->world_next) + ")");
    }
  }
  state_->requests[request].clear();
  state_->active[request] = 0;
  state_->free_slots.push_back(request);
  request = kNoRequest;
}

void RingExchange::progress() {
  // MPI_Testall drives the progress engine; a slot whose pieces all completed has its requests
  // freed (MPI_REQUEST_NULL) and its later wait() returns at once.
  for (std::size_t slot = 0; slot < state_->requests.size(); ++slot)
    if (state_->active[slot]) state_->test(static_cast<int>(slot));
}

}  // namespace rw::mpi
