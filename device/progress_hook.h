// progress_hook.h: a callback that keeps communication moving while the host is busy in, or
// waiting for, device work.
#pragma once

namespace rw::device {

// Called by a backend, always from the thread that submitted the work and never from a worker
// thread: between tiles of a kernel that runs on the calling thread (cpu), or repeatedly while
// the host waits for work to finish (synchronize, host_wait), so that communication posted
// before the kernel (MPI non-blocking transfers) keeps making progress.
struct ProgressHook {
  void (*fn)(void* context) = nullptr;
  void* context = nullptr;
  void operator()() const {
    if (fn) fn(context);
  }
};

}  // namespace rw::device
