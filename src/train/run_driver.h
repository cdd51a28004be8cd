// run_driver.h: runs a RunPlan: its stages in order (or one with only_stage), each from the
// previous stage's final parameters with the new rope_theta and seq_len (src/train/stage_loop.h),
// checkpoints every checkpoint_every steps and at each stage's end, resume from the run
// directory's latest checkpoint or a chosen one (--resume-from), and a clean stop with a
// checkpoint on SIGTERM / SIGUSR1 (Slurm's warning before the time limit).
// Run directory (io/run_directory.h):
//   run.ini                       the plan, its run-id, data checksums; provenance as comments
//   latest                        name of the newest complete checkpoint (written after it)
//   ckpt-<stage>-step<N>.h5       step checkpoints (the last keep_last of this run kept per stage)
//   ckpt-<stage>-final.h5         a stage's final checkpoint: the stage is done
//   metrics.jsonl                 a header per invocation, one record per step and validation
// Whether a directory that already holds a run is continued or refused: src/train/run_reuse.h.
#pragma once
#include <optional>
#include <string>

#include "src/train/run_plan.h"

namespace rw::train {

// Exit codes of run_training().
constexpr int kRunComplete = 0;
constexpr int kRunStoppedBySignal = 75;  // EX_TEMPFAIL: checkpoint written, resume to continue

// Collective over the world; errors in the user's files or options are reported once (rank 0)
// and give a non-zero return on every rank. saved: the run directory's run.ini as written
// (nullopt when there is none), for the decisions of run_reuse.h.
int run_training(RunPlan plan, const std::optional<RunPlan>& saved);

// Memory pre-flight (collective over the world: every rank gets the same verdict, so no rank
// goes on alone): parameters, gradients and two AdamW moments, fp32, sharded over grid_size
// ranks (16 bytes per parameter / ranks) against the memory this node has per local rank.
// Returns "" when it fits, else the message naming what does not fit (nodes may differ).
std::string memory_preflight_error(const model::LlamaConfig& config, int grid_size);

// Installs the SIGTERM/SIGUSR1 handlers that request a checkpoint and a clean stop.
void install_stop_signal_handlers();

}  // namespace rw::train
