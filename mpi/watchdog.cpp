// watchdog.cpp
#include "mpi/watchdog.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "mpi/runtime.h"
#include "src/common/activity.h"
#include "src/common/fatal.h"

namespace rw::mpi {

struct Watchdog::State {
  double timeout_s = 0, grace_s = 0;
  int rank = 0;
  std::string host;
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
  std::thread thread;

  // Sleeps up to seconds; true when asked to stop.
  bool sleep_or_stop(double seconds) {
    std::unique_lock<std::mutex> lock(mutex);
    return wake.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return stop; });
  }

  void run() {
    const double poll_s = std::min(1.0, std::max(0.05, timeout_s / 20));
    for (;;) {
      if (sleep_or_stop(poll_s)) return;
      const activity::Snapshot now = activity::snapshot();
      if (now.since_progress_s <= timeout_s) continue;
      std::fprintf(stderr, "ringworld watchdog: rank %d on %s: no progress for %.1f s (timeout %.1f s) at %s\n",
                   rank, host.c_str(), now.since_progress_s, timeout_s, activity::describe(now).c_str());
      std::fflush(stderr);
      // The other ranks' watchdogs fire within about one ring step of this one: let them print.
      if (sleep_or_stop(grace_s)) return;
      std::fprintf(stderr,
                   "ringworld watchdog: rank %d ends the job (exit status 3; the launcher ends the other ranks): a rank "
                   "hung; see the lines above\n",
                   rank);
      std::fflush(stderr);
      run_cleanup();
      // This thread must not call MPI (MPI_THREAD_FUNNELED: the main thread may be inside an MPI
      // call that never returns): end_job leaves without MPI, and the launcher turns a rank
      // that exits non-zero without MPI_Finalize into the end of the whole job.
      end_job(3);
    }
  }
};

Watchdog::Watchdog(double timeout_s, double grace_s) : state_(std::make_unique<State>()) {
  state_->timeout_s = timeout_s;
  state_->grace_s = grace_s >= 0 ? grace_s : std::min(30.0, std::max(2.0, timeout_s / 4));
  state_->rank = world_rank();
  state_->host = host_name();
  if (timeout_s <= 0) return;
  activity::note_progress();
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

Watchdog::~Watchdog() {
  if (!state_->thread.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
  }
  state_->wake.notify_all();
  state_->thread.join();
}

double Watchdog::timeout_s() const { return state_->timeout_s; }

}  // namespace rw::mpi
