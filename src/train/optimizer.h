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
// On the device: the update is the backend's adamw kernel per shard (kernel_args.h's AdamWArgs:
// the arithmetic above in fp64 per element, w, m, v stored fp32), and the gradient norm and the
// finiteness checks are device reductions (sum_squares into one f64 device scalar) of which only
// the one value is read back; the host never touches the shards.
//   Finiteness by sum of squares: the square of a finite fp32 value is below 1.2e77, so an fp64
//   sum of fewer than 1e231 of them is finite; one NaN or infinite element makes it NaN or inf.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "device/device_scalar.h"
#include "device/exec_context.h"
#include "src/train/fsdp_params.h"

namespace rw::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

// One shard's tensors as the optimizer sees them: device pointers, `owned` elements each.
struct ShardTensors {
  float* weights = nullptr;
  const float* grads = nullptr;
  float* adam_m = nullptr;
  float* adam_v = nullptr;
  const uint8_t* decay = nullptr;  // nonzero: weight decay applies
  int64_t owned = 0;
};

// The owned part of every shard of params, in unit order.
std::vector<ShardTensors> shard_tensors(FsdpParams& params);

// The optimizer's device work on one backend and stream (exec.compute), with the f64 device
// scalar its reductions land in: construct one per run (it allocates).
class Optimizer {
 public:
  explicit Optimizer(const device::ExecContext& exec);
  // AdamW at optimizer step t (1-based: the bias correction's exponent) on each shard;
  // grad_multiplier scales the gradients first (clipping). Returns whether every updated weight
  // and moment of these shards is finite (a reduction read back: the step's sync point).
  bool adamw_step(const std::vector<ShardTensors>& shards, const AdamWConfig& config, double lr, int64_t t,
                  double grad_multiplier);
  // The sum over the shards, in order, of their gradients squared in fp64, the same bits every
  // call: on the CPU backends in index order (a host loop's bits), on the GPU backends in the
  // sum_squares kernel's fixed order (kernel_args.h).
  double grad_sum_squares(const std::vector<ShardTensors>& shards);
  // Whether every weight and AdamW moment of these shards is finite.
  bool state_is_finite(const std::vector<ShardTensors>& shards);
  const device::ExecContext& exec() const { return exec_; }

 private:
  void add_sum_squares(const float* x, int64_t n);  // scalar += sum of x[i]^2 (enqueued)
  device::ExecContext exec_;
  device::DeviceScalar scalar_;
};

// The clipping multiplier: clip / grad_norm when grad_norm > clip > 0, else 1. grad_norm must be
// finite (a non-finite step is skipped or stops the run before it gets here: trainer.h).
double clip_multiplier(double grad_norm, double clip);

// sqrt of the sum of squares of all gradients over the whole grid (collective).
double global_grad_norm(Optimizer& optimizer, FsdpParams& params);

// Collective: true on every rank when every owned weight and AdamW moment of every rank is
// finite. The guard before any checkpoint or parameter file is written.
bool state_is_finite(Optimizer& optimizer, FsdpParams& params);

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
