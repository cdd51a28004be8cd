// stage_checks.h: the ranges of a stage's numbers, wherever the stage came from (the command
// line, a [stage.NAME] section, run.ini on resume). One message naming the stage, the key and
// the allowed range, e.g. "stage '2k': lr must be a finite number >= 0 (got nan)".
#pragma once
#include "src/train/run_plan.h"

namespace rw::train {

// Throws InputError when a number of `stage` is out of its range: seq-len >= 1,
// global-batch-tokens >= 0, steps >= 1, warmup-steps >= 0, lr and min-lr finite and >= 0,
// rope_theta finite and > 1.
void check_stage_numbers(const StageSpec& stage);

}  // namespace rw::train
