// watchdog.h: hang forensics. A thread per rank watches src/common/activity.h; when the rank
// has recorded no progress for timeout_s (a ring step, a collective or a checkpoint that does
// not finish), it prints one line naming rank, host, stage/step, layer, ring step and what the
// rank waits for, gives the other ranks' watchdogs a grace period to print theirs (they fire
// too: they wait on the stalled rank), and ends the whole job, so a hang costs timeout + grace
// seconds instead of the Slurm time limit. The watchdog thread never calls MPI (MPI is
// initialised MPI_THREAD_FUNNELED): it ends its process with exit status 3 (mpi::end_job), which
// mpirun, and srun with --kill-on-bad-exit=1, turn into the end of every rank. Free of <mpi.h>.
#pragma once
#include <memory>

namespace rw::mpi {

class Watchdog {
 public:
  // timeout_s <= 0: disabled (no thread). grace_s < 0: min(30, max(2, timeout_s / 4)).
  explicit Watchdog(double timeout_s, double grace_s = -1);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  double timeout_s() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace rw::mpi
