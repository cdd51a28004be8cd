// device_transfers.h: MPI operations on device buffers, ordered by events (device/README.md,
// "Phase B", transport). One MPI operation reads `in` (device bytes) and/or writes `out`
// (device bytes): a ring send (in only), a ring receive (out only), an all-gather or a
// reduce-scatter (both). Its caller names the ordering points as events:
//   ready     recorded behind the work that produced `in`: MPI (or the staging copy) reads `in`
//             only after it;
//   writable  recorded behind the last work that reads `out`'s old contents: MPI (or the staging
//             copy) writes `out` only after it.
// Both are captured when the operation is posted (as Backend::wait does), so the caller may
// re-record them at once. Completion (wait) makes a consumer stream wait for `out` to land.
//
// The two paths (transfer_path.h):
//   direct  a capture stream waits for ready and writable, then records a gate event; once the
//           host sees the gate complete, the MPI operation is posted on the device pointers.
//   staged  `in` is copied device -> pinned on a copy stream after ready; once that copy's
//           event is complete the MPI operation is posted on pinned buffers; when MPI is done,
//           the copy stream waits for writable and copies pinned -> `out`, recording a landed
//           event the consumer waits on. Pinned buffers come from a pool that keeps them for the
//           life of this object (one per transfer in flight; a buffer is reused only once the
//           copy that used it has completed), so steady-state steps allocate nothing.
// Operations are posted to MPI in submission order (collectives must be, on every rank, and
// point-to-point messages of one tag match in posting order). Progress is driven by the host:
// progress() (between kernels, and as the progress hook while the host waits) posts what has
// become ready, tests what is in flight and enqueues the landing copies. Never blocks except in
// wait(). The host thread only: never call from a backend worker. Free of <mpi.h>.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "device/backend.h"
#include "mpi/transfer_path.h"

namespace rw::mpi {

// How one MPI operation starts and completes, on host-accessible pointers (the device buffers
// on the direct path, pinned buffers on the staged one).
struct MpiOpHooks {
  std::function<void(const void* in, void* out)> post;  // starts it (non-blocking)
  std::function<bool()> test;                           // true once complete; never blocks
};

class DeviceTransfers {
 public:
  using Request = int;
  static constexpr Request kNoRequest = -1;

  // timeout_s: how long wait() may see no completion before it ends the job (<= 0: never);
  // `peers` is appended to reports ("ring neighbours: ...").
  DeviceTransfers(device::Backend& backend, TransferPath path, double timeout_s = 900.0, std::string peers = "");
  ~DeviceTransfers();  // completes every operation still in flight
  DeviceTransfers(const DeviceTransfers&) = delete;
  DeviceTransfers& operator=(const DeviceTransfers&) = delete;

  TransferPath path() const { return path_; }
  device::Backend& backend() { return backend_; }

  // Posts one operation (see above). in/out may be null (then their byte count is 0 and their
  // event is ignored); `what` names it in reports. `in` must stay unchanged until the operation
  // completes.
  Request post(const void* in, std::size_t in_bytes, device::Event* ready, void* out, std::size_t out_bytes,
               device::Event* writable, MpiOpHooks hooks, std::string what);
  // Completes the operation: posts it (and those before it) once their events allow, waits for
  // MPI, and lands `out`, driving every other operation meanwhile (a peer may need one posted
  // after this one); records what it waits for (the watchdog) and ends the job after the timeout. Afterwards work enqueued on `consumer` (if given) sees `out`, and
  // `landed` (if given) is recorded behind the landing (for a later ready/wait).
  void wait(Request& request, device::Stream* consumer, device::Event* landed = nullptr);
  // Whether wait() would return without waiting for MPI (never blocks).
  bool test(Request& request);
  // Posts, tests and lands what it can; never blocks.
  void progress();
  // The hook a backend calls while the host waits or between tiles: progress().
  device::ProgressHook hook() { return {&DeviceTransfers::progress_trampoline, this}; }
  // Called on every round of wait()'s loop, besides progress(): the companion transfers of the
  // same component (another channel, another communicator), which a peer may be waiting for
  // while this rank waits here.
  void set_wait_hook(device::ProgressHook hook) { wait_hook_ = hook; }

  // Pinned staging buffers held (staged path): count and bytes; allocations made so far.
  int pinned_buffers() const { return static_cast<int>(pool_.size()); }
  std::size_t pinned_bytes() const;

 private:
  struct Pinned {
    void* data = nullptr;
    std::size_t n_bytes = 0;
    bool in_use = false;
    std::unique_ptr<device::Event> free_after;  // the last copy that used it (never recorded: free)
  };
  enum class State { waiting, posted, landed };
  struct Op {
    const void* in = nullptr;
    void* out = nullptr;
    std::size_t in_bytes = 0, out_bytes = 0;
    State state = State::waiting;
    std::unique_ptr<device::Event> gate;      // MPI may start once complete
    std::unique_ptr<device::Event> out_free;  // staged: writable, captured at post
    std::unique_ptr<device::Event> landed;    // staged: out has landed
    int pinned_in = -1, pinned_out = -1;      // pool indices (staged)
    MpiOpHooks hooks;
    std::string what;
  };

  static void progress_trampoline(void* self) { static_cast<DeviceTransfers*>(self)->progress(); }
  int take_pinned(std::size_t n_bytes);
  void start(Op& op);   // posts the MPI operation (its gate is complete)
  void land(Op& op);    // MPI is done: the landing copy (staged), buffers back to the pool

  device::Backend& backend_;
  TransferPath path_;
  double timeout_s_;
  std::string peers_;
  std::unique_ptr<device::Stream> copy_;     // staging copies
  std::unique_ptr<device::Stream> capture_;  // waits that capture events at post time
  std::map<Request, Op> ops_;                // in submission order
  Request next_id_ = 0;
  std::vector<Pinned> pool_;
  bool in_progress_ = false;
  device::ProgressHook wait_hook_;  // progress() is not re-entered from a hook it triggers
};

}  // namespace rw::mpi
