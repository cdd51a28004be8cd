// device_transfers.cpp: see device_transfers.h.
#include "mpi/device_transfers.h"

#include <thread>
#include <utility>

#include "mpi/runtime.h"
#include "src/common/activity.h"
#include "src/common/fatal.h"
#include "src/common/timer.h"

namespace rw::mpi {

DeviceTransfers::DeviceTransfers(device::Backend& backend, TransferPath path, double timeout_s, std::string peers)
    : backend_(backend),
      path_(path),
      timeout_s_(timeout_s),
      peers_(std::move(peers)),
      copy_(backend.create_stream()),
      capture_(backend.create_stream()) {}

DeviceTransfers::~DeviceTransfers() {
  while (!ops_.empty()) {
    Request r = ops_.begin()->first;
    wait(r, nullptr);
  }
  backend_.synchronize(*copy_);
  backend_.synchronize(*capture_);
  for (Pinned& p : pool_) backend_.release(p.data);
}

std::size_t DeviceTransfers::pinned_bytes() const {
  std::size_t n = 0;
  for (const Pinned& p : pool_) n += p.n_bytes;
  return n;
}

int DeviceTransfers::take_pinned(std::size_t n_bytes) {
  // The smallest buffer not held by an operation, whether or not the landing copy that last
  // read it has finished (post() orders the new use behind it): which buffers exist depends on
  // the sequence of calls only, so a run allocates the same ones every step.
  int best = -1;
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    const Pinned& p = pool_[i];
    if (p.in_use || p.n_bytes < n_bytes) continue;
    if (best < 0 || p.n_bytes < pool_[best].n_bytes) best = static_cast<int>(i);
  }
  if (best < 0) {  // none free: a new one (the pool only grows, and stops growing after a step)
    Pinned p;
    p.data = backend_.allocate(n_bytes, device::MemoryKind::pinned_host);
    p.n_bytes = n_bytes;
    p.free_after = backend_.create_event();
    pool_.push_back(std::move(p));
    best = static_cast<int>(pool_.size()) - 1;
  }
  pool_[best].in_use = true;
  return best;
}

DeviceTransfers::Request DeviceTransfers::post(const void* in, std::size_t in_bytes, device::Event* ready, void* out,
                                               std::size_t out_bytes, device::Event* writable, MpiOpHooks hooks,
                                               std::string what) {
  Op op;
  op.in = in_bytes > 0 ? in : nullptr;
  op.out = out_bytes > 0 ? out : nullptr;
  op.in_bytes = op.in ? in_bytes : 0;
  op.out_bytes = op.out ? out_bytes : 0;
  op.hooks = std::move(hooks);
  op.what = std::move(what);
  op.gate = backend_.create_event();
  if (path_ == TransferPath::direct) {
    // MPI touches the device buffers themselves: it may start once both are safe.
    if (op.in && ready) backend_.wait(*capture_, *ready);
    if (op.out && writable) backend_.wait(*capture_, *writable);
    backend_.record(*op.gate, *capture_);
  } else {
    if (op.in) {
      op.pinned_in = take_pinned(op.in_bytes);
      if (ready) backend_.wait(*copy_, *ready);
      backend_.copy_async(pool_[op.pinned_in].data, op.in, op.in_bytes, *copy_);
      backend_.record(*op.gate, *copy_);
    }
    if (op.out) {
      op.pinned_out = take_pinned(op.out_bytes);
      op.out_free = backend_.create_event();
      op.landed = backend_.create_event();
      if (writable) backend_.wait(*capture_, *writable);
      backend_.record(*op.out_free, *capture_);
      // MPI writes the pinned buffer: not before the landing copy that last read it (on the copy
      // stream; with an input, the gate above already follows it on that stream).
      if (!op.in && !backend_.query(*pool_[op.pinned_out].free_after)) backend_.record(*op.gate, *copy_);
    }
  }
  const Request id = next_id_++;
  ops_.emplace(id, std::move(op));
  progress();
  return id;
}

void DeviceTransfers::start(Op& op) {
  const void* in = op.in;
  void* out = op.out;
  if (path_ == TransferPath::staged) {
    in = op.pinned_in >= 0 ? pool_[op.pinned_in].data : nullptr;
    out = op.pinned_out >= 0 ? pool_[op.pinned_out].data : nullptr;
  }
  op.hooks.post(in, out);
  op.state = State::posted;
}

void DeviceTransfers::land(Op& op) {
  // MPI is done. The pinned buffers go back to the pool when the caller completes the operation
  // (wait), so how many exist depends on the calls, not on when MPI finished.
  if (op.pinned_out >= 0) {
    Pinned& p = pool_[op.pinned_out];
    backend_.wait(*copy_, *op.out_free);
    backend_.copy_async(op.out, p.data, op.out_bytes, *copy_);
    backend_.record(*op.landed, *copy_);
    backend_.record(*p.free_after, *copy_);
  }
  op.state = State::landed;
}

void DeviceTransfers::progress() {
  if (in_progress_) return;
  in_progress_ = true;
  bool blocked = false;  // an earlier operation is not yet posted: later ones wait (order)
  for (auto& [id, op] : ops_) {
    if (op.state == State::waiting) {
      if (!blocked && backend_.query(*op.gate)) start(op);
      else blocked = true;
    }
    if (op.state == State::posted && op.hooks.test()) land(op);
  }
  in_progress_ = false;
}

bool DeviceTransfers::test(Request& request) {
  if (request == kNoRequest) return true;
  auto it = ops_.find(request);
  RW_CHECK(it != ops_.end(), "test of an unknown device transfer request");
  progress();
  return it->second.state == State::landed;
}

void DeviceTransfers::wait(Request& request, device::Stream* consumer, device::Event* landed) {
  if (request == kNoRequest) return;
  auto it = ops_.find(request);
  RW_CHECK(it != ops_.end(), "wait on an unknown device transfer request");
  Op& op = it->second;
  progress();
  if (op.state != State::landed) {
    // Recorded only when the wait is real: the watchdog then names what this rank waits for.
    activity::Doing doing("waiting for the " + op.what + (op.state == State::waiting ? " (its device work first)" : "") +
                          peers_);
    const double start = wall_seconds();
    while (op.state != State::landed) {
      std::this_thread::yield();
      wait_hook_();
      progress();
      if (op.state != State::landed && timeout_s_ > 0 && wall_seconds() - start > timeout_s_)
        RW_FAIL("rank " + std::to_string(world_rank()) + " on " + host_name() + ": no progress for " +
                std::to_string(timeout_s_) + " s waiting for the " + op.what + peers_);
    }
  }
  if (op.landed) {  // staged output: the landing copy on the copy stream
    if (consumer) backend_.wait(*consumer, *op.landed);
    if (landed) backend_.wait(*capture_, *op.landed);
  }
  if (landed) backend_.record(*landed, *capture_);  // direct: MPI's bytes are in place now
  if (op.pinned_in >= 0) pool_[op.pinned_in].in_use = false;
  if (op.pinned_out >= 0) pool_[op.pinned_out].in_use = false;
  ops_.erase(it);
  request = kNoRequest;
}

}  // namespace rw::mpi
