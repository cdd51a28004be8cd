// optimizer.cpp
#include "src/train/optimizer.h"

#include <cmath>

#include "src/common/input_error.h"

namespace rw::train {

void adamw_step(FsdpParams& params, const AdamWConfig& c, double lr, int step, double grad_multiplier) {
  const double bias1 = 1 - std::pow(c.beta1, step), bias2 = 1 - std::pow(c.beta2, step);
  for (FsdpParams::Shard& s : params.shards()) {
    const int64_t owned = s.end - s.begin;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < owned; ++i) {
      const double g = double(s.grads[i]) * grad_multiplier;
      const double m = c.beta1 * s.adam_m[i] + (1 - c.beta1) * g;
      const double v = c.beta2 * s.adam_v[i] + (1 - c.beta2) * g * g;
      s.adam_m[i] = static_cast<float>(m);
      s.adam_v[i] = static_cast<float>(v);
      double w = s.weights[i];
      const double update = (m / bias1) / (std::sqrt(v / bias2) + c.eps) + (s.decay[i] ? c.weight_decay * w : 0.0);
      s.weights[i] = static_cast<float>(w - lr * update);
    }
  }
}

double global_grad_norm(FsdpParams& params) {
  double sum_sq = 0;
  for (const FsdpParams::Shard& s : params.shards())
    for (int64_t i = 0; i < s.end - s.begin; ++i) sum_sq += double(s.grads[i]) * double(s.grads[i]);
  return std::sqrt(params.grid().allreduce_sum(sum_sq));
}

double LrSchedule::at(int step) const {
  if (kind == Kind::constant) return peak_lr;
  if (step < warmup_steps) return peak_lr * double(step + 1) / double(warmup_steps);
  if (kind == Kind::warmup) return peak_lr;
  const int decay_steps = std::max(1, total_steps - warmup_steps);
  const double progress = std::min(1.0, double(step - warmup_steps) / double(decay_steps));
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

}  // namespace rw::train
