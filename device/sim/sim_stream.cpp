// sim_stream.cpp: see sim_stream.h.
#include "device/sim/sim_stream.h"

#include <chrono>

namespace rw::device::sim {

void StreamProgress::host_wait(uint64_t ticket, const ProgressHook& hook) {
  for (;;) {
    hook();
    std::unique_lock<std::mutex> lock(mutex);
    if (completed >= ticket) return;
    advanced.wait_for(lock, std::chrono::microseconds(100), [&] { return completed >= ticket; });
    if (completed >= ticket) {
      lock.unlock();
      hook();
      return;
    }
  }
}

SimStream::SimStream(const Backend& owner, int id, int max_delay_us, uint64_t seed)
    : Stream(owner), id_(id), max_delay_us_(max_delay_us), rng_(seed * 1000003u + static_cast<uint64_t>(id)) {
  worker_ = std::thread([this] { run(); });
}

SimStream::~SimStream() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  has_work_.notify_all();
  worker_.join();
}

uint64_t SimStream::enqueue(std::function<void()> op) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(op));
  }
  has_work_.notify_one();
  return ++enqueued_;
}

void SimStream::run() {
  for (;;) {
    std::function<void()> op;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      has_work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything enqueued has run
      op = std::move(queue_.front());
      queue_.pop_front();
    }
    if (max_delay_us_ > 0) {
      std::uniform_int_distribution<int> delay(0, max_delay_us_);
      std::this_thread::sleep_for(std::chrono::microseconds(delay(rng_)));
    }
    op();
    {
      std::lock_guard<std::mutex> lock(progress_->mutex);
      ++progress_->completed;
    }
    progress_->advanced.notify_all();
  }
}

}  // namespace rw::device::sim
