// sim_stream.h: a sim-gpu stream: a FIFO of operations run by one worker thread, in order, each
// after an optional random delay; and the progress counter that events and host waits watch.
//
// Ordering: operation i of a stream starts after operation i-1 finished. An event is a ticket
// (stream progress, number of operations enqueued when it was recorded); it is complete when
// that many operations of the stream have finished. A cross-stream wait is itself an operation
// that blocks its worker until the ticket completes.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "device/progress_hook.h"
#include "device/stream.h"

namespace rw::device::sim {

// Operations finished so far on one stream; shared with the events recorded on it, so an event
// may outlive its stream.
struct StreamProgress {
  std::mutex mutex;
  std::condition_variable advanced;
  uint64_t completed = 0;
  bool is_complete(uint64_t ticket) {
    std::lock_guard<std::mutex> lock(mutex);
    return completed >= ticket;
  }
  // Blocks the calling (worker) thread until `ticket` operations have finished.
  void wait_for(uint64_t ticket) {
    std::unique_lock<std::mutex> lock(mutex);
    advanced.wait(lock, [&] { return completed >= ticket; });
  }
  // Blocks the host until `ticket` operations have finished, calling hook at least once and
  // then every ~100 us while it waits.
  void host_wait(uint64_t ticket, const ProgressHook& hook);
};

class SimStream : public Stream {
 public:
  // max_delay_us > 0: each operation waits a uniformly random 0..max_delay_us microseconds
  // first (seeded: the same delays for the same seed and stream id).
  SimStream(const Backend& owner, int id, int max_delay_us, uint64_t seed);
  ~SimStream() override;  // lets pending work finish, then stops the worker

  // Enqueues an operation; returns its ticket (1-based count of operations enqueued).
  uint64_t enqueue(std::function<void()> op);
  uint64_t enqueued() const { return enqueued_; }  // host thread only
  const std::shared_ptr<StreamProgress>& progress() const { return progress_; }
  int id() const { return id_; }

 private:
  void run();

  int id_;
  int max_delay_us_;
  std::mt19937_64 rng_;
  std::shared_ptr<StreamProgress> progress_ = std::make_shared<StreamProgress>();
  std::mutex mutex_;
  std::condition_variable has_work_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  uint64_t enqueued_ = 0;
  std::thread worker_;
};

}  // namespace rw::device::sim
