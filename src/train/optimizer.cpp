// optimizer.cpp
#include "src/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "src/common/input_error.h"

namespace rw::train {

int64_t adamw_update(FsdpParams::Shard& s, const AdamWConfig& c, double lr, int64_t t, double grad_multiplier) {
  // Host loops over the shards: valid where device memory is host-accessible (cpu); the AdamW
  // kernel takes over in phase B (device/README.md).
  float* weights = s.weights.data();
  float* adam_m = s.adam_m.data();
  float* adam_v = s.adam_v.data();
  const float* grads = s.grads.data();
  const uint8_t* decay = s.decay.data();
  const double bias1 = 1 - std::pow(c.beta1, double(t)), bias2 = 1 - std::pow(c.beta2, double(t));
  const int64_t owned = s.end - s.begin;
  int64_t non_finite = 0;
#pragma omp parallel for schedule(static) reduction(+ : non_finite)
  for (int64_t i = 0; i < owned; ++i) {
    const double g = double(grads[i]) * grad_multiplier;
    const double m = c.beta1 * adam_m[i] + (1 - c.beta1) * g;
    const double v = c.beta2 * adam_v[i] + (1 - c.beta2) * g * g;
    adam_m[i] = static_cast<float>(m);
    adam_v[i] = static_cast<float>(v);
    const double w = weights[i];
    const double update = (m / bias1) / (std::sqrt(v / bias2) + c.eps) + (decay[i] ? c.weight_decay * w : 0.0);
    weights[i] = static_cast<float>(w - lr * update);
    if (!std::isfinite(weights[i]) || !std::isfinite(adam_m[i]) || !std::isfinite(adam_v[i])) ++non_finite;
  }
  return non_finite;
}

int64_t adamw_step(FsdpParams& params, const AdamWConfig& c, double lr, int64_t t, double grad_multiplier) {
  int64_t non_finite = 0;
  for (FsdpParams::Shard& s : params.shards()) non_finite += adamw_update(s, c, lr, t, grad_multiplier);
  return non_finite;
}

double clip_multiplier(double grad_norm, double clip) {
  return clip > 0 && grad_norm > clip ? clip / grad_norm : 1.0;
}

bool state_is_finite(FsdpParams& params) {
  double bad = 0;
  for (const FsdpParams::Shard& s : static_cast<const FsdpParams&>(params).shards()) {
    const float *w = s.weights.data(), *m = s.adam_m.data(), *v = s.adam_v.data();  // host-accessible (cpu)
    for (int64_t i = 0; i < s.end - s.begin; ++i)
      if (!std::isfinite(w[i]) || !std::isfinite(m[i]) || !std::isfinite(v[i])) bad += 1;
  }
  // Counts of 0/1 per element sum exactly: every rank gets the same verdict.
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
