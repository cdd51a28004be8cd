// optimizer.cpp
#include "src/train/optimizer.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::train {

std::vector<ShardTensors> shard_tensors(FsdpParams& params) {
  std::vector<ShardTensors> out;
  for (FsdpParams::Shard& s : params.shards()) {
    ShardTensors t;
    t.weights = s.weights.data();
    t.grads = s.grads.data();
    t.adam_m = s.adam_m.data();
    t.adam_v = s.adam_v.data();
    t.decay = s.decay.data();
    t.owned = s.end - s.begin;
    out.push_back(t);
  }
  return out;
}

Optimizer::Optimizer(const device::ExecContext& exec) : exec_(exec), scalar_(*exec.backend) {}

void Optimizer::add_sum_squares(const float* x, int64_t n) {
  if (n == 0) return;
  device::SumSquaresArgs r;
  r.x = device::view(x, {n});
  r.result = scalar_.view();
  exec_.backend->sum_squares(r, *exec_.compute);
}

bool Optimizer::adamw_step(const std::vector<ShardTensors>& shards, const AdamWConfig& c, double lr, int64_t t,
                           double grad_multiplier) {
  RW_CHECK(t >= 1 && t <= INT32_MAX, "AdamW step " + std::to_string(t) + " out of range");
  for (const ShardTensors& s : shards) {
    if (s.owned == 0) continue;
    device::AdamWArgs a;
    a.weights = device::view(s.weights, {s.owned});
    a.m = device::view(s.adam_m, {s.owned});
    a.v = device::view(s.adam_v, {s.owned});
    a.grads = device::view(s.grads, {s.owned});
    a.decay = device::view(s.decay, {s.owned});
    a.lr = lr;
    a.beta1 = c.beta1;
    a.beta2 = c.beta2;
    a.eps = c.eps;
    a.weight_decay = c.weight_decay;
    a.grad_multiplier = grad_multiplier;
    a.step = static_cast<int>(t);
    exec_.backend->adamw(a, *exec_.compute);
  }
  return state_is_finite(shards);
}

double Optimizer::grad_sum_squares(const std::vector<ShardTensors>& shards) {
  scalar_.zero(*exec_.compute);
  for (const ShardTensors& s : shards) add_sum_squares(s.grads, s.owned);
  return scalar_.read(*exec_.compute);
}

bool Optimizer::state_is_finite(const std::vector<ShardTensors>& shards) {
  scalar_.zero(*exec_.compute);
  for (const ShardTensors& s : shards) {
    add_sum_squares(s.weights, s.owned);
    add_sum_squares(s.adam_m, s.owned);
    add_sum_squares(s.adam_v, s.owned);
  }
  return std::isfinite(scalar_.read(*exec_.compute));
}

double clip_multiplier(double grad_norm, double clip) {
  return clip > 0 && grad_norm > clip ? clip / grad_norm : 1.0;
}

double global_grad_norm(Optimizer& optimizer, FsdpParams& params) {
  const double sum_sq = optimizer.grad_sum_squares(shard_tensors(params));
  return std::sqrt(params.grid().allreduce_sum(sum_sq));
}

bool state_is_finite(Optimizer& optimizer, FsdpParams& params) {
  const double bad = optimizer.state_is_finite(shard_tensors(params)) ? 0.0 : 1.0;
  // Flags of 0/1 sum exactly: every rank gets the same verdict.
  return params.grid().allreduce_sum(bad) == 0;
}

double LrSchedule::at(int step) const {
  if (kind == Kind::constant) return peak_lr;
  if (step <= warmup_steps) return peak_lr * double(step) / double(warmup_steps);  // warmup_steps >= step >= 1
  if (kind == Kind::warmup) return peak_lr;
  const double progress = std::min(1.0, double(step - warmup_steps) / double(std::max(1, total_steps - warmup_steps)));
  return min_lr + 0.5 * (peak_lr - min_lr) * (1 + std::cos(3.141592653589793 * progress));
}

LrSchedule::Kind parse_schedule(const std::string& name) {
  if (name == "constant") return LrSchedule::Kind::constant;
  if (name == "warmup") return LrSchedule::Kind::warmup;
  if (name == "cosine") return LrSchedule::Kind::cosine;
  throw InputError("unknown lr schedule '" + name + "' (expected constant, warmup or cosine)");
}

std::string schedule_name(LrSchedule::Kind kind) {
  switch (kind) {
    case LrSchedule::Kind::constant: return "constant";
    case LrSchedule::Kind::warmup: return "warmup";
    case LrSchedule::Kind::cosine: return "cosine";
  }
  return "?";
}

namespace {
std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}
}  // namespace

std::string describe_schedule(const LrSchedule& s) {
  const std::string n = std::to_string(s.total_steps), w = std::to_string(s.warmup_steps);
  if (s.kind == LrSchedule::Kind::constant)
    return "lr " + number(s.peak_lr) + " constant" +
           (s.warmup_steps > 0 ? " (warmup-steps " + w + " unused by a constant schedule)" : "");
  std::string text = "lr ";
  if (s.warmup_steps > 0) {
    text += "warm-up " + number(s.at(1)) + " -> " + number(s.peak_lr) + " over steps 1-" + w;
    if (s.warmup_steps >= s.total_steps) {
      if (s.warmup_steps == s.total_steps) return text + ", the last step";
      return text + "; warning: the warm-up of " + w + " steps is longer than the stage's " + n +
             " steps: the lr ends at " + number(s.at(s.total_steps)) + ", never at its peak " + number(s.peak_lr);
    }
    text += ", then ";
  }
  if (s.kind == LrSchedule::Kind::warmup) return text + (s.warmup_steps > 0 ? "constant" : number(s.peak_lr) + " constant (warm-up 0 steps)");
  return text + "cosine " + number(s.at(s.warmup_steps + 1)) + " -> " + number(s.min_lr) + " over steps " +
         std::to_string(s.warmup_steps + 1) + "-" + n;
}

}  // namespace rw::train
