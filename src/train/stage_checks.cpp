// stage_checks.cpp
#include "src/train/stage_checks.h"

#include <cmath>
#include <string>

#include "src/common/input_error.h"
#include "src/common/number_format.h"

namespace rw::train {
namespace {

[[noreturn]] void refuse(const StageSpec& stage, const char* key, const std::string& range, const std::string& got) {
  throw InputError("stage '" + stage.name + "': " + key + " must be " + range + " (got " + got + ")");
}

void at_least(const StageSpec& stage, const char* key, int64_t value, int64_t low) {
  if (value < low) refuse(stage, key, "an integer >= " + std::to_string(low), std::to_string(value));
}

void finite_at_least(const StageSpec& stage, const char* key, double value, double low, bool open) {
  if (!std::isfinite(value) || (open ? !(value > low) : !(value >= low)))
    refuse(stage, key, std::string("a finite number ") + (open ? "> " : ">= ") + format_number(low), format_number(value));
}

}  // namespace

void check_stage_numbers(const StageSpec& s) {
  at_least(s, "seq-len", s.seq_len, 1);
  at_least(s, "global-batch-tokens", s.global_batch_tokens, 0);
  at_least(s, "steps", s.steps, 1);
  at_least(s, "warmup-steps", s.warmup_steps, 0);
  finite_at_least(s, "lr", s.lr, 0, false);
  finite_at_least(s, "min-lr", s.min_lr, 0, false);
  finite_at_least(s, "rope_theta", s.rope_theta, 1, true);
}

}  // namespace rw::train
