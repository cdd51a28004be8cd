// device_ring.h: device buffers between ring neighbours, in stream order (device_transfers.h)
// over a RingTransport (ring_transport.h). Every device send names the event behind the work
// that produced its bytes, every device receive the event behind the last work that read the
// buffer it overwrites: the ordering points are arguments, so a transfer cannot be posted
// without one. Small host-memory messages (headers) go through transport() directly, on tags
// of their own. Free of <mpi.h>.
#pragma once
#include <cstddef>
#include <string>

#include "device/backend.h"
#include "mpi/device_transfers.h"
#include "mpi/ring_transport.h"
#include "mpi/transfer_path.h"

namespace rw::mpi {

class DeviceRing {
 public:
  using Request = DeviceTransfers::Request;
  static constexpr Request kNoRequest = DeviceTransfers::kNoRequest;

  // The path follows choose_transfer_path(backend.capabilities(), choice).
  DeviceRing(RingTransport& transport, device::Backend& backend, PathChoice choice = PathChoice::automatic);

  RingTransport& transport() { return transport_; }
  int rank() const { return transport_.rank(); }
  int size() const { return transport_.size(); }
  TransferPath path() const { return transfers_.path(); }
  const std::string& path_reason() const { return path_reason_; }

  // n_bytes of device memory to the next rank, once `ready` (recorded behind their producer)
  // has completed; the bytes stay unchanged until wait() returns.
  Request post_send_next(const void* device_data, std::size_t n_bytes, int tag, device::Event& ready,
                         const char* what);
  // n_bytes from the previous rank into device memory, once `writable` (recorded behind the last
  // work reading the buffer) has completed.
  Request post_recv_prev(void* device_data, std::size_t n_bytes, int tag, device::Event& writable,
                         const char* what);
  // Completes a transfer; for a receive, work enqueued on `consumer` afterwards sees the bytes,
  // and `landed` (if given) is recorded behind their arrival.
  void wait(Request& request, device::Stream* consumer = nullptr, device::Event* landed = nullptr);
  // Lets every posted transfer advance; never blocks (the ring's progress hook).
  void progress();
  device::ProgressHook hook() { return {&DeviceRing::progress_trampoline, this}; }

  DeviceTransfers& transfers() { return transfers_; }

 private:
  static void progress_trampoline(void* self) { static_cast<DeviceRing*>(self)->progress(); }
  RingTransport& transport_;
  std::string path_reason_;
  DeviceTransfers transfers_;
};

}  // namespace rw::mpi
