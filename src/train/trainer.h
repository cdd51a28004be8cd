// trainer.h: one training step on the process grid: the local batch through the sharded model
// and the ring, the global weighted-mean loss, clipping, AdamW on the local shards.
//   loss = sum over the global batch of w * CE / sum of w   (targets < 0 ignored)
// The weight sum is all-reduced first, so each rank's backward already carries 1/sum(w) and the
// reduce-scattered gradients are exactly those of the global loss.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "device/backend.h"
#include "mpi/process_grid.h"
#include "src/attention/attention_ops.h"
#include "src/attention/layout.h"
#include "src/data/batch.h"
#include "src/model/matmul.h"
#include "src/model/transformer.h"
#include "src/train/fsdp_params.h"
#include "src/train/optimizer.h"

namespace rw::train {

struct TrainerOptions {
  AdamWConfig adamw;
  LrSchedule schedule;
  double clip_grad_norm = 1.0;  // <= 0: no clipping
  device::AttnTiling tiling;
  model::TransformerOptions transformer;
};

struct StepReport {
  int step = 0;                 // 0-based index of the step just taken
  double loss = 0, grad_norm = 0, lr = 0;
  double weight_sum = 0;        // sum of loss weights over the global batch
  int64_t tokens = 0;           // tokens in the global batch
  double seconds = 0;           // wall time of the step (slowest rank)
  double ring_compute_s = 0, ring_wait_s = 0;  // this rank's attention ring totals
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
  int steps_done() const { return steps_done_; }
  void set_steps_done(int steps) { steps_done_ = steps; }
  // AdamW steps the moments have taken (bias correction uses t = this + 1): equal to
  // steps_done() within a stage, larger when a stage carries the previous one's moments.
  int64_t optimizer_steps() const { return optimizer_steps_; }
  void set_optimizer_steps(int64_t steps) { optimizer_steps_ = steps; }
  // Forward only (validation): the global batch's loss terms are not reduced here; returns
  // this rank's sum of weight * CE and fills token_losses ([n_sequences, n_local]).
  double forward_only(const data::LocalBatch& batch, std::vector<double>* token_losses);

 private:
  model::LlamaConfig config_;
  mpi::ProcessGrid& grid_;
  data::DataSource& source_;
  TrainerOptions options_;
  FsdpParams params_;
  RingAttentionOp attention_;
  model::BackendMatMul matmul_;
  model::Transformer<float> model_;
  int steps_done_ = 0;
  int64_t optimizer_steps_ = 0;
};

}  // namespace rw::train
