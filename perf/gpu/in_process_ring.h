// in_process_ring.h: a RingTransport (mpi/ring_transport.h) between ranks that are threads of
// one process, for perf/gpu/gpu_ring_bench.cpp: the project's ring (src/attention/
// ring_attention.h over mpi/device_ring.h and mpi/device_transfers.h, unchanged) runs on it
// without MPI. What differs from the MPI ring (mpi/ring_exchange.cpp):
//   - messages are matched here, by a mutex-guarded queue per (receiving rank, tag), in posting
//     order (MPI's matching rule for one pair of ranks and one tag), and a matched pair is
//     copied at once by the thread that posted the second half (MPI's eager/rendezvous
//     protocols and its own progress engine are not modelled);
//   - the copy: Copy::host (the staged path: both ends are pinned host buffers, DeviceTransfers
//     did the D2H on the sender's copy stream and does the H2D on the receiver's): one memcpy,
//     as MPI's shared-memory transport does within a node; Copy::device (the direct path, GPU-
//     aware MPI's role): the posting thread's backend copies on a stream of its own and waits
//     for it (cudaMemcpyDefault: device to device, or host to host for the headers);
//   - the ranks are threads sharing one device context, so their kernels may run concurrently
//     on the GPU; MPI ranks on one GPU are processes whose contexts time-slice unless MPS runs.
// wait() ends the process (RW_FAIL naming the rank and the transfer) after timeout_s without
// completion, as the MPI transport's watchdog does, so no rank waits for ever.
#pragma once
#include <atomic>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "device/backend.h"
#include "mpi/ring_transport.h"

namespace rw::perf {

// What the ranks share: the queues of unmatched sends and receives.
class InProcessWire {
 public:
  explicit InProcessWire(int ranks) : ranks_(ranks) {}
  int ranks() const { return ranks_; }

 private:
  friend class InProcessTransport;
  struct Pending {
    void* dst = nullptr;
    const void* src = nullptr;
    std::size_t n_bytes = 0;
    std::shared_ptr<std::atomic<bool>> done;
    int rank = 0;  // who posted it
  };
  int ranks_;
  std::mutex mutex_;
  std::map<std::pair<int, int>, std::deque<Pending>> sends_, recvs_;  // key: (receiving rank, tag)
};

class InProcessTransport : public mpi::RingTransport {
 public:
  enum class Copy { host, device };
  // backend: this rank's (Copy::device copies with it, on a stream of its own; used only from
  // this rank's thread).
  InProcessTransport(InProcessWire& wire, int rank, Copy copy, device::Backend& backend, double timeout_s = 120.0);
  int rank() const override { return rank_; }
  int size() const override { return wire_.ranks(); }
  Request post_send_next(const void* data, std::size_t n_bytes, int tag) override;
  Request post_recv_prev(void* data, std::size_t n_bytes, int tag) override;
  void wait(Request& request, const char* what) override;
  bool test(Request& request) override;
  void progress() override {}
  double timeout_s() const override { return timeout_s_; }
  std::string describe_neighbours() const override;

 private:
  void copy(void* dst, const void* src, std::size_t n_bytes);
  Request track(std::shared_ptr<std::atomic<bool>> done);

  InProcessWire& wire_;
  int rank_;
  Copy copy_;
  device::Backend& backend_;
  std::unique_ptr<device::Stream> stream_;
  double timeout_s_;
  std::map<Request, std::shared_ptr<std::atomic<bool>>> open_;
  Request next_ = 0;
};

}  // namespace rw::perf
