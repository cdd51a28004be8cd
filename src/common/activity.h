// activity.h: what this rank is doing right now, for hang forensics. The main thread records
// where it is (stage and step, layer, ring step, what it waits for); every record counts as
// progress. The watchdog (mpi/watchdog.h) reads it from its own thread: when nothing has been
// recorded for longer than its timeout, it prints the snapshot and ends the job.
//
// Records are cheap (a mutex, a clock read) and coarse: once per ring step, per wait, per
// collective, per checkpoint. Free of MPI so src/ can record.
#pragma once
#include <string>

namespace rw::activity {

struct Snapshot {
  std::string stage;          // "" outside a staged run
  long step = -1;             // optimizer step within the stage (-1: none yet)
  int layer = -1;             // transformer layer (-1: none)
  std::string pass;           // "forward", "backward", ...
  int ring_step = -1, ring_size = 0;
  std::string doing;          // what the rank does or waits for now
  double since_progress_s = 0;  // seconds since the last record
  long records = 0;           // records so far (a counter that moves while the rank lives)
};

void set_step(const std::string& stage, long step);
void set_layer(int layer, const char* pass);
void set_ring_step(int ring_step, int ring_size);
void set_doing(const std::string& doing);  // replaces the "doing" text; counts as progress
void note_progress();                      // progress without a new description

Snapshot snapshot();
std::string describe(const Snapshot& s);  // one line: stage/step, layer, ring step, doing

// RAII: sets "doing" for a scope and records progress at both ends (restores the old text).
class Doing {
 public:
  explicit Doing(const std::string& what);
  ~Doing();
  Doing(const Doing&) = delete;
  Doing& operator=(const Doing&) = delete;

 private:
  std::string previous_;
};

// Test hook: RINGWORLD_INJECT_STALL="RANK:STEP:SECONDS" makes rank RANK sleep SECONDS at the
// start of its ring step STEP (of any layer, the first time it is reached), so a test can watch
// the watchdog name the stalled rank and every rank waiting on it. set_rank() tells this file
// which rank it is in (the MPI runtime calls it at start-up).
void set_rank(int rank);
void maybe_inject_stall(int ring_step);

}  // namespace rw::activity
