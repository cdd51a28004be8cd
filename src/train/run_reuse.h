// run_reuse.h: what a run does with a run directory that may already hold a run. Pure
// decisions over plans and a listing of the directory (no I/O, no MPI), so every rank reaches
// the same one and the rules are unit-tested.
//
// --resume DIR: DIR/run.ini is the plan. The invocation may change only the settings of
// keys_changeable_on_resume() (each change is reported, and recorded in run.ini with a note);
// any other difference (from --config X.ini or the command line) is refused, naming each key.
// Without --resume, a run directory that holds anything of a run (run.ini, latest, checkpoints,
// metrics.jsonl) is continued only when its run.ini holds this plan (the same command run
// again, or the next stage's job; of the settings --resume may change, all but a stage's steps
// may differ here too, reported and recorded alike); otherwise the run is refused before anything is written,
// saying how to continue that run (--resume DIR) or where to start this one (a new --run-dir).
// A run is never started from random weights over another run's files, and never deletes,
// appends to or rewrites them.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/run_directory.h"
#include "src/train/run_plan.h"

namespace rw::train {

// Settings that --resume may change: how the run saves, logs, validates and computes, and a
// stage's length (for a stage that has not ended, not below its checkpoint's step). Names as in
// run.ini; "steps" stands for every stage's steps.
const std::vector<std::string>& keys_changeable_on_resume();

struct RunDirectoryDecision {
  enum class Action { fresh, resume, refuse };
  Action action = Action::fresh;
  RunPlan plan;                     // what runs (its run_id set)
  std::vector<std::string> notes;   // what the user should read (changes made on resume)
  std::string error;                // Action::refuse: the whole message
  bool write_run_ini = false;       // a new run directory, or a plan changed on resume
};

// requested: this invocation's plan (on --resume: run.ini with this invocation's options;
// with --config X.ini too: X.ini with them). saved: the run directory's run.ini as written
// (nullopt when it has none). new_run_id: the identity a fresh run takes.
RunDirectoryDecision decide_run_directory(const RunPlan& requested, const std::optional<RunPlan>& saved,
                                          const io::RunDirectoryContents& contents, const std::string& new_run_id);

// A random identity for a new run (32 hex digits).
std::string new_run_id();

// A data spec with its file path made absolute ("file:data.h5" -> "file:/work/data.h5"), so
// run.ini works from any directory; other specs unchanged.
std::string absolute_data_spec(const std::string& spec);
// The file a data spec reads ("" for synthetic data).
std::string data_file_of(const std::string& spec);

// A checkpoint a stage is about to resume against the stage as planned. refused: what cannot
// continue (a model field, seq_len, tokens per step, seed, a step past the stage's end), each
// naming the setting and both values; reported: what may differ and is said (layout, grid,
// another run's checkpoint, a format-1 file's assumed optimizer step count, another build).
struct CheckpointCheck {
  std::vector<std::string> refused, reported;
};
CheckpointCheck compare_checkpoint_with_stage(const io::CheckpointState& state, const model::LlamaConfig& saved_config,
                                              const RunPlan& plan, const StageSpec& stage, int64_t batch_tokens,
                                              int world_size, int dp, int sp);

}  // namespace rw::train
