// ring_exchange.h: RingTransport over MPI point-to-point: non-blocking sends to the next rank
// and receives from the previous one, a progress call for use between compute tiles, and
// waits that never hang silently: a wait longer than the timeout aborts the job with the rank,
// host and what was awaited. A message of any size: one larger than the chunk size
// (src/common/transfer_limits.h, 1 GiB) travels as several MPI messages of at most a chunk,
// posted together on the message's tag and completed together by one wait. Both ends split a
// message of n bytes the same way (the chunk size is agreed over the ring at construction),
// and MPI keeps messages of one tag between two ranks in order, so the pieces match.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "mpi/communicator.h"
#include "mpi/ring_transport.h"

namespace rw::mpi {

class RingExchange : public RingTransport {
 public:
  // The ring over all ranks of the world, in rank order. wait_timeout_s <= 0 disables the
  // timeout.
  explicit RingExchange(double wait_timeout_s = 900.0);
  // The ring over the ranks of `comm`, in its rank order (the communicator is duplicated).
  // Collective over comm. chunk_bytes: the most bytes one MPI message carries; 0 takes
  // rw::mpi_chunk_bytes() (tests pass small values); the smallest over the ring is used.
  RingExchange(const Communicator& comm, double wait_timeout_s, std::size_t chunk_bytes = 0);
  ~RingExchange() override;

  int rank() const override;
  int size() const override;
  Request post_send_next(const void* data, std::size_t n_bytes, int tag) override;
  Request post_recv_prev(void* data, std::size_t n_bytes, int tag) override;
  void wait(Request& request, const char* what) override;
  bool test(Request& request) override;
  void progress() override;
  double timeout_s() const override;
  std::string describe_neighbours() const override;

  // Totals since construction, for benchmarks: bytes and messages this rank has posted to send.
  std::uint64_t bytes_sent() const;
  std::uint64_t messages_sent() const;
  // MPI messages posted to send (a message larger than a chunk counts once per piece).
  std::uint64_t mpi_messages_sent() const;
  std::size_t chunk_bytes() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace rw::mpi
