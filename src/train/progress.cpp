// progress.cpp
#include "src/train/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

namespace rw::train {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char text[32];
  const long long total = std::llround(s);
  if (s < 9.995) std::snprintf(text, sizeof text, "%.2f s", s);
  else if (s < 59.5) std::snprintf(text, sizeof text, "%.0f s", s);
  else if (total < 3600) std::snprintf(text, sizeof text, "%lldm%02llds", total / 60, total % 60);
  else if (total < 86400) std::snprintf(text, sizeof text, "%lldh%02lldm", total / 3600, (total % 3600) / 60);
  else std::snprintf(text, sizeof text, "%lldd%02lldh", total / 86400, (total % 86400) / 3600);
  return text;
}

std::string format_count(double n) {
  char text[32];
  const double a = std::fabs(n);
  if (a < 1e3) std::snprintf(text, sizeof text, "%.0f", n);
  else if (a < 1e6) std::snprintf(text, sizeof text, "%.3gK", n / 1e3);
  else if (a < 1e9) std::snprintf(text, sizeof text, "%.3gM", n / 1e6);
  else if (a < 1e12) std::snprintf(text, sizeof text, "%.3gG", n / 1e9);
  else std::snprintf(text, sizeof text, "%.3gT", n / 1e12);
  return text;
}

StageProgress::StageProgress(int first_step, int total_steps, double flops_per_step, std::vector<LaterStage> later)
    : steps_done_(first_step), total_steps_(total_steps), flops_per_step_(flops_per_step), later_(std::move(later)) {}

void StageProgress::record_step(double seconds) {
  if (timed_ == 0) first_seconds_ = seconds;
  else rest_seconds_ += seconds;
  ++timed_;
  ++steps_done_;
}

double StageProgress::seconds_per_step() const {
  if (timed_ == 0) return std::numeric_limits<double>::quiet_NaN();
  return timed_ == 1 ? first_seconds_ : rest_seconds_ / (timed_ - 1);
}

double StageProgress::stage_eta_seconds() const {
  return seconds_per_step() * std::max(0, total_steps_ - steps_done_);
}

double StageProgress::run_eta_seconds() const {
  double eta = stage_eta_seconds();
  for (const LaterStage& s : later_) {
    const double scale = flops_per_step_ > 0 ? s.flops_per_step / flops_per_step_ : 1.0;
    eta += seconds_per_step() * scale * s.steps;
  }
  return eta;
}

}  // namespace rw::train
