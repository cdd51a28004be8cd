// progress.h: the timing side of a long job's log: elapsed time, seconds per step, estimated
// time to the end of the stage and of the run, tokens seen. Pure arithmetic over what the
// driver reports (no clocks inside), so it is unit-tested.
//   s/step: the mean over this invocation's steps of the stage, the first one left out once
//   there are others (it carries one-time costs: first touches, page faults).
//   stage ETA: s/step x steps left in the stage.
//   run ETA: the stage ETA plus, for each later stage, its steps x s/step scaled by its FLOPs
//   per step over this stage's (attention's s^2 term included), i.e. assuming the same FLOP rate.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::train {

// "45 s", "12m05s", "3h02m", "2d04h"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);
// "950", "12.3K", "4.19M", "1.07G" (tokens, 3 significant digits).
std::string format_count(double count);

struct LaterStage {
  int steps = 0;
  double flops_per_step = 0;
};

class StageProgress {
 public:
  // first_step: steps already done when this invocation started the stage (a resume).
  StageProgress(int first_step, int total_steps, double flops_per_step, std::vector<LaterStage> later);
  // One step done, taking `seconds`.
  void record_step(double seconds);
  int steps_done() const { return steps_done_; }
  double seconds_per_step() const;   // NaN before the first step
  double stage_eta_seconds() const;  // NaN before the first step
  double run_eta_seconds() const;    // NaN before the first step
  bool has_later_stages() const { return !later_.empty(); }

 private:
  int steps_done_, total_steps_;
  double flops_per_step_;
  std::vector<LaterStage> later_;
  int timed_ = 0;
  double first_seconds_ = 0, rest_seconds_ = 0;
};

}  // namespace rw::train
