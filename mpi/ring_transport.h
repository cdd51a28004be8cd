// ring_transport.h: what the ring drivers need from the communication layer, and nothing more:
// byte messages in host-accessible memory to the next rank and from the previous one. mpi/ owns
// this interface (the ring in src/attention calls it; mpi/ring_exchange.cpp implements it over
// MPI); device buffers travel through mpi/device_ring.h, which orders them by events and stages
// them through pinned host memory where MPI cannot take device pointers. Free of <mpi.h>.
// Messages between one pair of ranks on one tag arrive in the order they were posted.
#pragma once
#include <cstddef>
#include <string>

namespace rw::mpi {

class RingTransport {
 public:
  using Request = int;  // opaque handle, valid until completed by wait() or a true test()
  static constexpr Request kNoRequest = -1;

  virtual ~RingTransport() = default;
  virtual int rank() const = 0;  // position in the ring
  virtual int size() const = 0;  // ring length

  // data: memory MPI may read or write (host memory, or device memory the transfer path allows).
  virtual Request post_send_next(const void* data, std::size_t n_bytes, int tag) = 0;
  virtual Request post_recv_prev(void* data, std::size_t n_bytes, int tag) = 0;
  // Completes one request (kNoRequest is a no-op); `what` names it in hang or error reports.
  virtual void wait(Request& request, const char* what) = 0;
  // Whether the request has completed (then it is released and set to kNoRequest; kNoRequest
  // counts as complete). Never blocks.
  virtual bool test(Request& request) = 0;
  // Lets posted transfers advance; called between compute tiles. Never blocks.
  virtual void progress() = 0;
  // For reports: seconds a wait may stall before the job ends (<= 0: never), and who the
  // neighbours are (" (ring neighbours: ...)", or "").
  virtual double timeout_s() const { return 0; }
  virtual std::string describe_neighbours() const { return ""; }
};

}  // namespace rw::mpi

namespace rw {
using mpi::RingTransport;  // the name the ring code and tools use
}  // namespace rw
