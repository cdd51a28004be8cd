// trainer.h: one training step on the process grid: the local batch through the sharded model
// and the ring, the global weighted-mean loss, clipping, AdamW on the local shards.
//   loss = sum over the global batch of w * CE / sum of w   (targets < 0 ignored)
// A vision model's loss is LWM's, 0.5 x mean vision CE + 0.5 x mean text CE (lwm_loss.h: each
// target's weight is scaled by its kind's share before the step).
// The weight sum is all-reduced first, so each rank's backward already carries 1/sum(w) and the
// reduce-scattered gradients are exactly those of the global loss.
//
// Micro-batches (gradient accumulation): with micro_batch_sequences = m > 0 a rank runs its
// dp group's sequences m at a time, forward and backward, so only one micro-batch's activations
// are resident. Every micro-batch's backward carries the same 1/sum(w) of the whole global batch
// and its gradients are reduce-scattered and added (fp32) into the gradient shards: the step's
// gradient is the one-big-batch gradient up to the order of the summation.
//
// Non-finite steps: when the global loss or the global gradient norm is not finite (on any rank:
// the verdict is agreed), the update is not applied: weights, AdamW moments and the optimizer's
// step count stay as they were. With OnNonFinite::stop (the default) the report carries a stop
// reason at once; with skip the step is counted and the run goes on, stopping after
// max_consecutive_skips skipped steps in a row. An update that itself produces a non-finite weight
// or moment (finite gradients, an lr that overflows) cannot be undone: it always stops the run.
// The caller must stop on a stop reason before writing any checkpoint.
//
// Device: the model, its ring attention, the FSDP shards and the optimizer share one backend and
// compute stream (exec(): the backend's default stream). The host reads back per step the loss
// sum of each micro-batch, the gradient norm's sum of squares and the update's finiteness
// verdict (one f64 each); everything else stays on the device.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/exec_context.h"
#include "mpi/process_grid.h"
#include "src/attention/attention_ops.h"
#include "src/attention/layout.h"
#include "src/data/batch.h"
#include "src/data/global_batch.h"
#include "src/model/transformer.h"
#include "src/train/fsdp_params.h"
#include "src/train/optimizer.h"

namespace rw::train {

enum class OnNonFinite { stop, skip };
OnNonFinite parse_on_nonfinite(const std::string& name);  // "stop" | "skip"; throws InputError

struct NonFinitePolicy {
  OnNonFinite action = OnNonFinite::stop;
  int max_consecutive_skips = 5;  // skip: stop when this many steps in a row were skipped (>= 1)
};

struct TrainerOptions {
  AdamWConfig adamw;
  LrSchedule schedule;
  double clip_grad_norm = 1.0;  // <= 0: no clipping
  device::AttnTiling tiling;
  model::TransformerOptions transformer;
  int micro_batch_sequences = 0;  // sequences of each dp group per micro-batch (0: all at once)
  NonFinitePolicy nonfinite;
  // Test hook: 1-based steps at which the last rank of the grid sets one of its gradients to NaN
  // after the backward. The environment variable RINGWORLD_TEST_INJECT_NAN_AT_STEP (comma-separated
  // steps, e.g. "3" or "2,3,4") adds to it; tests only.
  std::vector<int> inject_nan_at_steps;
};

using data::micro_batch_sequences;  // global_batch.h
// For the stage header: "" without micro-batches, else ", in 4 micro-batches of 16384 tokens".
std::string micro_batch_note(const TrainerOptions& options, int64_t global_batch_tokens, int dp, int seq_len);

struct StepReport {
  int step = 0;                 // 0-based index of the step just taken
  double loss = 0, grad_norm = 0, lr = 0;
  double weight_sum = 0;        // sum of loss weights over the global batch
  int64_t tokens = 0;           // tokens in the global batch
  double seconds = 0;           // wall time of the step (slowest rank)
  double ring_compute_s = 0, ring_wait_s = 0;  // this rank's attention ring totals
  int micro_batches = 1;        // forward/backward passes of the step
  bool skipped = false;         // non-finite loss or gradient norm: no update applied
  std::string nonfinite_note;   // what was skipped and the counts so far (when skipped)
  std::string stop_reason;      // non-empty: the run must stop now, before writing anything
};

// FLOPs of one forward pass, as the RingAttention paper counts them:
// (24 b s h^2 + 4 b s^2 h) * layers, the s^2 term halved for causal attention.
double forward_flops(const model::LlamaConfig& config, int64_t sequences, int64_t seq_len, bool causal);

class Trainer {
 public:
  Trainer(const model::LlamaConfig& config, mpi::ProcessGrid& grid, device::Backend& backend,
          data::DataSource& source, TrainerOptions options);
  StepReport step();
  FsdpParams& params() { return params_; }
  // Steps of the stage taken (skipped ones included): the schedule's and the data's position.
  int steps_done() const { return steps_done_; }
  // Also sets the optimizer's step count to `steps` (what a checkpoint without that count implies).
  void set_steps_done(int steps) { steps_done_ = optimizer_steps_ = steps; }
  // AdamW updates applied (the bias correction's t of the next update is this + 1); skipped
  // steps do not count. Save and restore it with the moments.
  int64_t optimizer_steps() const { return optimizer_steps_; }
  void set_optimizer_steps(int64_t steps) { optimizer_steps_ = steps; }
  int skipped_steps() const { return skipped_steps_; }  // this Trainer's skipped steps
  // Forward only (validation): the global batch's loss terms are not reduced here; returns
  // this rank's sum of weight * CE and fills token_losses ([n_sequences, n_local]).
  double forward_only(const data::LocalBatch& batch, std::vector<double>* token_losses);
  // Collective: every owned weight and AdamW moment of every rank is finite (optimizer.h).
  bool state_is_finite() { return train::state_is_finite(optimizer_, params_); }
  const device::ExecContext& exec() const { return exec_; }
  model::Transformer& model() { return model_; }

 private:
  model::LlamaConfig config_;
  mpi::ProcessGrid& grid_;
  data::DataSource& source_;
  TrainerOptions options_;
  device::ExecContext exec_;
  FsdpParams params_;
  RingAttentionOp attention_;
  model::Transformer model_;
  Optimizer optimizer_;
  int steps_done_ = 0;
  int64_t optimizer_steps_ = 0;
  int skipped_steps_ = 0, consecutive_skips_ = 0;
};

}  // namespace rw::train
