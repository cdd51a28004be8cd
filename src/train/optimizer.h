// optimizer.h: AdamW on this rank's parameter shards, global gradient-norm clipping, the
// finiteness checks that keep a non-finite step out of the weights and checkpoints, and the
// learning-rate schedules.
//   AdamW (decoupled weight decay, Loshchilov & Hutter), at optimizer step t = 1, 2, ...:
//     g = multiplier * grad; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//     w -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd * w); no weight decay on norm weights.
//   Clipping: multiplier = clip / ||grad|| when ||grad|| > clip > 0, else 1.
//   Schedules, for the steps k = 1..N of a stage (N = total_steps, W = warmup_steps):
//     constant  lr(k) = peak                          (warmup_steps is not used)
//     warmup    lr(k) = peak * k / W for k <= W, then peak
//     cosine    the same warm-up, then lr(k) = min + (peak - min) (1 + cos(pi (k - W) / (N - W))) / 2
//               for W < k <= N: lr(W) = peak, lr(N) = min_lr.
//   The warm-up is the line from lr 0 at step 0 (before any update) to peak at step W: step 1
//   trains with peak / W, never with 0 (a step at lr 0 would be wasted). W = 0: no warm-up (the
//   cosine then decays from peak at step 0, lr(1) just below peak). W >= N: the warm-up does not
//   end within the stage (describe_schedule says so).
#pragma once
#include <cstdint>
#include <string>

#include "src/train/fsdp_params.h"
#include "src/train/grad_norm.h"  // global_grad_norm (on the device shards)

namespace rw::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

// One update of a shard's owned elements at optimizer step t (1-based: the bias correction's
// exponent); grad_multiplier scales the gradients first (clipping). Arithmetic in fp64, weights
// and moments stored fp32. Returns how many updated weights or moments are not finite (0 for a
// sane step; see state_is_finite).
int64_t adamw_update(FsdpParams::Shard& shard, const AdamWConfig& config, double lr, int64_t t, double grad_multiplier);

// adamw_update on every shard of this rank; returns the non-finite count of this rank.
int64_t adamw_step(FsdpParams& params, const AdamWConfig& config, double lr, int64_t t, double grad_multiplier);

// The clipping multiplier: clip / grad_norm when grad_norm > clip > 0, else 1. grad_norm must be
// finite (a non-finite step is skipped or stops the run before it gets here: trainer.h).
double clip_multiplier(double grad_norm, double clip);

// Collective: true on every rank when every owned weight and AdamW moment of every rank is
// finite. The guard before any checkpoint or parameter file is written.
bool state_is_finite(FsdpParams& params);

struct LrSchedule {
  enum class Kind { constant, warmup, cosine };
  Kind kind = Kind::constant;
  double peak_lr = 3e-4, min_lr = 0;
  int warmup_steps = 0, total_steps = 1;
  double at(int step) const;  // step = 1..total_steps (the k above)
};

LrSchedule::Kind parse_schedule(const std::string& name);  // throws InputError
std::string schedule_name(LrSchedule::Kind kind);

// What the schedule does, in words, for the stage header: e.g. "lr 0.001 constant",
// "lr warm-up 1e-4 -> 0.001 over steps 1-10, then constant", "lr warm-up ... then cosine to
// 1e-4 at step 100". A warm-up that does not end within the stage adds a "warning: ..." clause
// naming the lr the stage ends at; warmup-steps given to a constant schedule is said to be unused.
std::string describe_schedule(const LrSchedule& schedule);

}  // namespace rw::train
