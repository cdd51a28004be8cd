// run_driver.h: runs a RunPlan: its stages in order (or one with only_stage), each from the
// previous stage's final parameters with the new rope_theta and seq_len, checkpoints every
// checkpoint_every steps and at each stage's end, resume from the run directory's latest
// checkpoint, and a clean stop with a checkpoint on SIGTERM / SIGUSR1 (Slurm's warning before
// the time limit). Run directory:
//   run.ini                       the plan (--resume reads it back)
//   latest                        name of the newest complete checkpoint (written after it)
//   ckpt-<stage>-step<N>.h5       step checkpoints (the last keep_last kept per stage)
//   ckpt-<stage>-final.h5         a stage's final checkpoint: the stage is done
//   metrics.jsonl                 one JSON object per step
#pragma once
#include <string>

#include "src/train/run_plan.h"

namespace rw::train {

// Exit codes of run_plan().
constexpr int kRunComplete = 0;
constexpr int kRunStoppedBySignal = 75;  // EX_TEMPFAIL: checkpoint written, resume to continue

// Collective over the world; errors in the user's files or options are reported once (rank 0)
// and give a non-zero return on every rank.
int run_training(RunPlan plan);

// Memory pre-flight (collective over the world: every rank gets the same verdict, so no rank
// goes on alone): parameters, gradients and two AdamW moments, fp32, sharded over grid_size
// ranks (16 bytes per parameter / ranks) against the memory this node has per local rank.
// Returns "" when it fits, else the message naming what does not fit (nodes may differ).
std::string memory_preflight_error(const model::LlamaConfig& config, int grid_size);

// Installs the SIGTERM/SIGUSR1 handlers that request a checkpoint and a clean stop.
void install_stop_signal_handlers();

}  // namespace rw::train
