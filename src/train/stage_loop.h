// stage_loop.h: one stage of a run: its data, where its parameters come from (a checkpoint to
// resume, the previous stage's final, a parameter file, or a random initialisation), the step
// loop with its log lines and metrics records, validation, checkpoints and pruning, the stage's
// final checkpoint and summary. run_driver.cpp calls it for each stage in order.
#pragma once
#include <csignal>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "device/backend.h"
#include "io/checkpoint.h"
#include "io/metrics_log.h"
#include "io/run_directory.h"
#include "mpi/process_grid.h"
#include "src/attention/layout.h"
#include "src/train/run_plan.h"

namespace rw::train {

// What the stages of one invocation share.
struct RunContext {
  const RunPlan* plan = nullptr;
  mpi::ProcessGrid* grid = nullptr;
  device::Backend* backend = nullptr;
  Layout layout = Layout::zigzag;
  const io::RunDirectory* run_dir = nullptr;  // null without a run directory
  io::MetricsLog* metrics = nullptr;          // open on rank 0 only (closed elsewhere)
  const volatile std::sig_atomic_t* stop_flag = nullptr;  // set by SIGTERM / SIGUSR1
  double peak_gflops = 0;
  double run_start_s = 0;         // wall clock when this invocation started
  int steps_this_invocation = 0;  // over all stages
  bool stop_requested = false;
  bool metrics_warned = false;
  nlohmann::ordered_json metrics_header;  // rank 0: written when the first stage starts training
  // The checkpoint this invocation resumes (the stage it belongs to starts from it).
  std::string resume_path;
  io::CheckpointState resume_state;
};

enum class StageResult { completed, stopped, failed };

// Collective. On failed, *error holds the message (the same on every rank).
StageResult run_stage(RunContext& context, std::size_t index, std::string* error);

// Tokens per step of a stage: its global-batch-tokens, or one sequence per dp group.
int64_t batch_tokens_of(const StageSpec& stage, const RunPlan& plan);

}  // namespace rw::train
