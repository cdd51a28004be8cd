// trainer.cpp
#include "src/train/trainer.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/global_batch.h"
#include "src/train/lwm_loss.h"

namespace rw::train {

double forward_flops(const model::LlamaConfig& c, int64_t b, int64_t s, bool causal) {
  const double h = double(c.hidden_size);
  const double attention = 4.0 * b * double(s) * double(s) * h * (causal ? 0.5 : 1.0);
  return (24.0 * b * double(s) * h * h + attention) * double(c.num_hidden_layers);
}

OnNonFinite parse_on_nonfinite(const std::string& name) {
  if (name == "stop") return OnNonFinite::stop;
  if (name == "skip") return OnNonFinite::skip;
  throw InputError("--on-nonfinite '" + name + "': expected stop or skip");
}

std::string micro_batch_note(const TrainerOptions& o, int64_t global_tokens, int dp, int seq_len) {
  const int64_t micro_tokens = static_cast<int64_t>(o.micro_batch_sequences) * dp * seq_len;
  if (micro_tokens <= 0 || micro_tokens >= global_tokens) return "";
  return ", in " + std::to_string(global_tokens / micro_tokens) + " micro-batches of " + std::to_string(micro_tokens) +
         " tokens";
}

namespace {
RingOptions ring_options(const TrainerOptions& o) {
  RingOptions r;
  r.causal = true;
  r.tiling = o.tiling;
  return r;
}

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

// RINGWORLD_TEST_INJECT_NAN_AT_STEP: comma-separated 1-based steps (test hook, trainer.h).
std::vector<int> injected_steps(std::vector<int> steps) {
  if (const char* text = std::getenv("RINGWORLD_TEST_INJECT_NAN_AT_STEP")) {
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ','))
      if (!item.empty()) steps.push_back(std::atoi(item.c_str()));
  }
  return steps;
}
}  // namespace

Trainer::Trainer(const model::LlamaConfig& config, mpi::ProcessGrid& grid, device::Backend& backend,
                 data::DataSource& source, TrainerOptions options)
    : config_(config), grid_(grid), source_(source), options_(options),
      exec_(device::ExecContext::on_default_stream(backend)),
      params_(config, grid, exec_, fsdp_options_for(options.transformer.precision)),
      attention_(exec_, grid.ring(), ring_options(options)), model_(config, params_, attention_, exec_, options.transformer),
      optimizer_(exec_) {
  options_.inject_nan_at_steps = injected_steps(options_.inject_nan_at_steps);
}

StepReport Trainer::step() {
  grid_.barrier();
  const double t0 = wall_seconds();
  StepReport r;
  r.step = steps_done_;
  const int step_1based = steps_done_ + 1;
  data::LocalBatch batch = source_.next();
  // The weights of text and vision targets (all text in a text-only model) and the tokens.
  const std::array<double, 2> kinds = kind_weight_sums(batch, config_);
  double sums[3] = {kinds[0], kinds[1], static_cast<double>(batch.token_count())};
  grid_.allreduce_sum(sums, 3);
  r.weight_sum = sums[0] + sums[1];
  r.tokens = static_cast<int64_t>(sums[2]);
  apply_lwm_loss_weights(batch, config_, {sums[0], sums[1]});  // a vision model: LWM's loss (lwm_loss.h)
  attention_.reset_stats();
  params_.zero_grads();
  // Every micro-batch's backward carries 1/sum(w) of the whole global batch; the gradient
  // shards accumulate (FsdpParams::reduce_grad adds).
  const double grad_scale = r.weight_sum > 0 ? 1.0 / r.weight_sum : 0.0;
  const int per_micro = options_.micro_batch_sequences > 0 && options_.micro_batch_sequences < batch.n_sequences
                            ? options_.micro_batch_sequences
                            : batch.n_sequences;
  double local_loss = 0;
  r.micro_batches = 0;
  for (int first = 0; first < batch.n_sequences || r.micro_batches == 0; first += per_micro, ++r.micro_batches) {
    if (per_micro == batch.n_sequences) local_loss += model_.forward_backward(batch, grad_scale);
    else local_loss += model_.forward_backward(data::sequences_of(batch, first, per_micro), grad_scale);
  }
  for (int s : options_.inject_nan_at_steps)
    if (s == step_1based && grid_.rank() == grid_.size() - 1)
      for (FsdpParams::Shard& shard : params_.shards())
        if (shard.end > shard.begin) {  // the first owned gradient := NaN, on the device
          device::FillArgs nan;
          nan.x = device::view(shard.grads.data(), {1});
          nan.value = std::numeric_limits<double>::quiet_NaN();
          exec_.backend->fill(nan, *exec_.compute);
          break;
        }
  const double loss_sum = grid_.allreduce_sum(local_loss);
  r.loss = r.weight_sum > 0 ? loss_sum / r.weight_sum : 0.0;
  r.grad_norm = global_grad_norm(optimizer_, params_);
  r.lr = options_.schedule.at(step_1based);
  // One verdict for all ranks (0/1 flags sum exactly), whatever each rank's rounding.
  const bool local_bad = !std::isfinite(r.loss) || !std::isfinite(r.grad_norm);
  const bool non_finite = grid_.allreduce_sum(local_bad ? 1.0 : 0.0) > 0;
  const std::string at = "step " + std::to_string(step_1based) + " (loss " + num(r.loss) +
                         ", gradient norm " + num(r.grad_norm) + ")";
  if (non_finite) {
    r.skipped = true;
    ++skipped_steps_;
    ++consecutive_skips_;
    r.nonfinite_note = "non-finite " + at + ": update skipped (weights, AdamW moments and step count unchanged); " +
                       std::to_string(consecutive_skips_) + " in a row, " + std::to_string(skipped_steps_) +
                       " skipped in this stage";
    if (options_.nonfinite.action == OnNonFinite::stop)
      r.stop_reason = "non-finite " + at + ": stopped before updating the weights or writing a checkpoint " +
                      "(the last checkpoint predates it; --on-nonfinite skip skips such steps)";
    else if (consecutive_skips_ >= options_.nonfinite.max_consecutive_skips)
      r.stop_reason = "non-finite " + at + ": " + std::to_string(consecutive_skips_) +
                      " steps in a row skipped (--max-consecutive-skips " +
                      std::to_string(options_.nonfinite.max_consecutive_skips) +
                      "): stopped without writing a checkpoint (the last checkpoint predates them)";
  } else {
    consecutive_skips_ = 0;
    const bool finite = optimizer_.adamw_step(shard_tensors(params_), options_.adamw, r.lr, ++optimizer_steps_,
                                              clip_multiplier(r.grad_norm, options_.clip_grad_norm));
    if (grid_.allreduce_sum(finite ? 0.0 : 1.0) > 0)
      r.stop_reason = "the update of " + at + " at lr " + num(r.lr) +
                      " made weights or AdamW moments non-finite: stopped without writing a checkpoint";
  }
  ++steps_done_;
  grid_.barrier();  // the step ends when the slowest rank is done
  r.seconds = wall_seconds() - t0;
  r.ring_compute_s = attention_.compute_s;
  r.ring_wait_s = attention_.wait_s;
  return r;
}

}  // namespace rw::train

namespace rw::train {

double Trainer::forward_only(const data::LocalBatch& batch, std::vector<double>* token_losses) {
  token_losses->assign(static_cast<std::size_t>(batch.token_count()), 0.0);
  attention_.reset_stats();
  return model_.forward(batch, nullptr, token_losses->data());
}

}  // namespace rw::train
