// ring_transport.h: what the ring drivers need from the communication layer, and nothing more.
// mpi/ring_exchange.cpp implements it over MPI; src/ never sees MPI itself.
// Messages between one pair of ranks on one tag arrive in the order they were posted.
#pragma once
#include <cstddef>
#include <string>

namespace rw {

class RingTransport {
 public:
  using Request = int;  // opaque handle, valid until waited on
  static constexpr Request kNoRequest = -1;

  virtual ~RingTransport() = default;
  virtual int rank() const = 0;  // position in the ring
  virtual int size() const = 0;  // ring length

  virtual Request post_send_next(const void* data, std::size_t n_bytes, int tag) = 0;
  virtual Request post_recv_prev(void* data, std::size_t n_bytes, int tag) = 0;
  // Completes one request (kNoRequest is a no-op); `what` names it in hang or error reports.
  virtual void wait(Request& request, const char* what) = 0;
  // Lets posted transfers advance; called between compute tiles. Never blocks.
  virtual void progress() = 0;
};

}  // namespace rw
