// optimizer.h: AdamW on this rank's parameter shards, global gradient-norm clipping and the
// learning-rate schedules.
//   AdamW (decoupled weight decay, Loshchilov & Hutter): m = b1 m + (1-b1) g,
//   v = b2 v + (1-b2) g^2, w -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd * w);
//   no weight decay on norm weights.
//   Schedules: constant; warmup (linear from 0 over warmup steps, then constant); cosine
//   (linear warm-up, then cosine decay to min_lr at the last step).
#pragma once
#include <string>

#include "src/train/fsdp_params.h"

namespace rw::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

// One update of every shard; grad_multiplier scales the gradients first (clipping).
void adamw_step(FsdpParams& params, const AdamWConfig& config, double lr, int step_1based, double grad_multiplier);

// sqrt of the sum of squares of all gradients over the whole grid (collective).
double global_grad_norm(FsdpParams& params);

struct LrSchedule {
  enum class Kind { constant, warmup, cosine };
  Kind kind = Kind::constant;
  double peak_lr = 3e-4, min_lr = 0;
  int warmup_steps = 0, total_steps = 1;
  double at(int step_0based) const;
};

LrSchedule::Kind parse_schedule(const std::string& name);  // throws InputError
std::string schedule_name(LrSchedule::Kind kind);

}  // namespace rw::train
