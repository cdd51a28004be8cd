// run_plan.h: everything a training run is: the model, the grid, the optimizer, and the stages
// of progressive context extension (LWM: each stage a longer sequence and a larger RoPE theta,
// initialised from the previous stage's final parameters). A run without stages is one stage.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/model/llama_config.h"
#include "src/train/optimizer.h"

namespace rw::train {

struct StageSpec {
  std::string name = "main";
  int seq_len = 1024;
  double rope_theta = 10000;
  int64_t global_batch_tokens = 0;  // 0: one sequence per dp group
  int steps = 100;
  int warmup_steps = 10;
  double lr = 1e-3, min_lr = 1e-4;
  std::string schedule = "cosine";
  std::string data = "synthetic";
  std::string data_checksum;  // "crc32:0x... bytes:N" of a file: dataset ("" until recorded)
};

struct RunPlan {
  model::LlamaConfig model;
  std::string model_preset = "tiny";
  int dp = 0, sp = 0;
  std::string layout = "zigzag", device = "cpu";
  uint64_t seed = 1;
  AdamWConfig adamw;
  double clip_grad_norm = 1.0;
  int block_q = 256, block_k = 256;
  int64_t ffn_chunk = 1024;
  std::string precision = "fp32";  // fp32 | bf16 (src/model/precision.h; run.ini records it unless fp32)
  int log_every = 1;
  int64_t micro_batch_tokens = 0;     // tokens of the global batch per micro-batch (0: whole batch; trainer.h)
  std::string on_nonfinite = "stop";  // stop | skip a step whose loss or gradient norm is not finite
  int max_consecutive_skips = 5;      // skip: stop after this many skipped steps in a row
  double timeout_s = 900;
  std::string metrics;          // JSON-lines file ("" = none; default run_dir/metrics.jsonl)
  std::string run_dir;          // checkpoints ("" = none)
  int checkpoint_every = 0;     // steps between checkpoints within a stage (0: stage ends only)
  int keep_last = 2;            // step checkpoints kept per stage (stage finals are always kept)
  bool carry_optimizer = false; // a new stage keeps the previous stage's AdamW moments
  std::string only_stage;       // run just this stage ("" = all, in order)
  bool resume = false;          // continue from run_dir's latest checkpoint
  int stop_after_steps = 0;     // stop (with a checkpoint, like SIGTERM) after this many steps (0: never)
  std::string init_params, save_params;
  std::vector<StageSpec> stages;
  // The run directory and its observability (see src/train/run_reuse.h, run_driver.h).
  std::string run_id;           // the run's identity (run.ini's run-id; drawn when a run starts)
  std::string resume_from;      // start from this checkpoint (or a run directory's latest)
  std::string val_data;         // held-out data spec for validation ("" = none)
  std::string val_data_checksum;  // its file's checksum, as StageSpec::data_checksum ("" until recorded)
  int eval_every = 0;           // steps between validations (0: at each stage's end only)
  int val_sequences = 0;        // sequences per validation (0: 4, rounded up to a multiple of dp)
  int64_t val_bucket_tokens = 0;  // width of the position buckets (0: seq_len / 8, a power of 2)
};

// The keys a [stage.NAME] section may set, and which of them are required.
const std::vector<std::string>& stage_keys();
const std::vector<std::string>& required_stage_keys();

// Completes the dp x sp grid of `world` ranks: 0 means "the rest" (both 0: dp 1, sp world).
// Throws InputError unless dp * sp == world.
void resolve_grid(int world, int& dp, int& sp);
// Sets one stage field from its INI text; throws InputError naming the key on a bad value.
void set_stage_field(StageSpec& stage, const std::string& key, const std::string& value);

// The plan as an INI file that --config (or --resume RUN_DIR) reads back to the same plan.
std::string to_ini(const RunPlan& plan);

// One setting that differs between two plans: its INI key ("lr" of a stage is "[stage.a] lr";
// a stage only one plan has is "[stage.a]") and both values as to_ini writes them ("" absent).
struct PlanDifference {
  std::string key, before, after;
  std::string text() const;  // "[stage.a] lr 0.003 -> 0.001"
};
// Every setting of to_ini() that differs, in file order. run-id is not compared, and a stage's
// data-checksum only when both plans have one.
std::vector<PlanDifference> plan_differences(const RunPlan& before, const RunPlan& after);

}  // namespace rw::train
