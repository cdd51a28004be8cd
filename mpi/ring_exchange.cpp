// ring_exchange.cpp
#include "mpi/ring_exchange.h"

#include <mpi.h>

#include <climits>
#include <string>
#include <vector>

#include "mpi/communicator_impl.h"
#include "mpi/mpi_check.h"
#include "mpi/runtime.h"
#include "src/common/activity.h"
#include "src/common/timer.h"

namespace rw::mpi {

struct RingExchange::State {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
  double timeout_s = 0;
  std::vector<MPI_Request> requests;  // slot per handle; MPI_REQUEST_NULL when done
  std::vector<int> free_slots;
  std::vector<char> active;           // handle given out and not yet waited on
  std::uint64_t bytes_sent = 0, messages_sent = 0;
  int world_prev = -1, world_next = -1;  // world ranks of the ring neighbours (for reports)

  int take_slot() {
    if (free_slots.empty()) {
      requests.push_back(MPI_REQUEST_NULL);
      active.push_back(0);
      return static_cast<int>(requests.size()) - 1;
    }
    int slot = free_slots.back();
    free_slots.pop_back();
    return slot;
  }
};

RingExchange::RingExchange(double wait_timeout_s) : RingExchange(Communicator::world(), wait_timeout_s) {}

RingExchange::RingExchange(const Communicator& comm, double wait_timeout_s) : state_(std::make_unique<State>()) {
  RW_MPI_CHECK(MPI_Comm_dup(comm.impl().comm, &state_->comm));
  RW_MPI_CHECK(MPI_Comm_set_errhandler(state_->comm, MPI_ERRORS_RETURN));
  RW_MPI_CHECK(MPI_Comm_rank(state_->comm, &state_->rank));
  RW_MPI_CHECK(MPI_Comm_size(state_->comm, &state_->size));
  state_->timeout_s = wait_timeout_s;
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
  for (std::size_t i = 0; i < state_->requests.size(); ++i)
    if (state_->requests[i] != MPI_REQUEST_NULL) MPI_Wait(&state_->requests[i], MPI_STATUS_IGNORE);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && state_->comm != MPI_COMM_NULL) MPI_Comm_free(&state_->comm);
}

int RingExchange::rank() const { return state_->rank; }
int RingExchange::size() const { return state_->size; }
std::uint64_t RingExchange::bytes_sent() const { return state_->bytes_sent; }
std::uint64_t RingExchange::messages_sent() const { return state_->messages_sent; }

RingTransport::Request RingExchange::post_send_next(const void* data, std::size_t n_bytes, int tag) {
  RW_CHECK(n_bytes <= static_cast<std::size_t>(INT_MAX),
           "ring message of " + std::to_string(n_bytes) + " bytes exceeds MPI's int count");
  int slot = state_->take_slot();
  int next = (state_->rank + 1) % state_->size;
  RW_MPI_CHECK(MPI_Isend(data, static_cast<int>(n_bytes), MPI_BYTE, next, tag, state_->comm,
                         &state_->requests[slot]));
  state_->active[slot] = 1;
  state_->bytes_sent += n_bytes;
  state_->messages_sent += 1;
  return slot;
}

RingTransport::Request RingExchange::post_recv_prev(void* data, std::size_t n_bytes, int tag) {
  RW_CHECK(n_bytes <= static_cast<std::size_t>(INT_MAX),
           "ring message of " + std::to_string(n_bytes) + " bytes exceeds MPI's int count");
  int slot = state_->take_slot();
  int prev = (state_->rank + state_->size - 1) % state_->size;
  RW_MPI_CHECK(MPI_Irecv(data, static_cast<int>(n_bytes), MPI_BYTE, prev, tag, state_->comm,
                         &state_->requests[slot]));
  state_->active[slot] = 1;
  return slot;
}

void RingExchange::wait(Request& request, const char* what) {
  if (request == kNoRequest) return;
  RW_CHECK(request >= 0 && request < static_cast<int>(state_->requests.size()) && state_->active[request],
           "wait on an unknown ring request");
  MPI_Request& r = state_->requests[request];
  MPI_Status status;
  int done = 0;
  RW_MPI_CHECK(MPI_Test(&r, &done, &status));
  if (!done) {
    // Recorded only when the wait is real: the watchdog then names what this rank waits for.
    activity::Doing doing(std::string("waiting for the ") + what + " (ring neighbours: previous world rank " +
                          std::to_string(state_->world_prev) + ", next " + std::to_string(state_->world_next) + ")");
    const double start = wall_seconds();
    while (!done) {
      RW_MPI_CHECK(MPI_Test(&r, &done, &status));
      if (!done && state_->timeout_s > 0 && wall_seconds() - start > state_->timeout_s)
        RW_FAIL("rank " + std::to_string(world_rank()) + " on " + host_name() + ": no progress for " +
                std::to_string(state_->timeout_s) + " s waiting for the " + what + " (previous world rank " +
                std::to_string(state_->world_prev) + ", next " + std::to_string(state_->world_next) + ")");
    }
  }
  state_->active[request] = 0;
  state_->free_slots.push_back(request);
  request = kNoRequest;
}

void RingExchange::progress() {
  if (state_->requests.empty()) return;
  int flag = 0;
  // Testall on the whole table drives the progress engine; completed requests become
  // MPI_REQUEST_NULL and their later wait() returns at once.
  RW_MPI_CHECK(MPI_Testall(static_cast<int>(state_->requests.size()), state_->requests.data(), &flag,
                           MPI_STATUSES_IGNORE));
}

}  // namespace rw::mpi
