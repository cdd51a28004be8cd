// trainer.cpp
#include "src/train/trainer.h"

#include "src/common/timer.h"

namespace rw::train {

double forward_flops(const model::LlamaConfig& c, int64_t b, int64_t s, bool causal) {
  const double h = double(c.hidden_size);
  const double attention = 4.0 * b * double(s) * double(s) * h * (causal ? 0.5 : 1.0);
  return (24.0 * b * double(s) * h * h + attention) * double(c.num_hidden_layers);
}

namespace {
RingOptions ring_options(const TrainerOptions& o) {
  RingOptions r;
  r.causal = true;
  r.tiling = o.tiling;
  return r;
}
}  // namespace

Trainer::Trainer(const model::LlamaConfig& config, mpi::ProcessGrid& grid, device::Backend& backend,
                 data::DataSource& source, TrainerOptions options)
    : config_(config), grid_(grid), source_(source), options_(options), params_(config, grid),
      attention_(backend, grid.ring(), ring_options(options)), matmul_(backend),
      model_(config, params_, attention_, matmul_, options.transformer) {}

StepReport Trainer::step() {
  grid_.barrier();
  const double t0 = wall_seconds();
  StepReport r;
  r.step = steps_done_;
  const data::LocalBatch batch = source_.next();
  double sums[2] = {0, static_cast<double>(batch.token_count())};
  for (std::size_t i = 0; i < batch.loss_weights.size(); ++i)
    if (batch.targets[i] >= 0) sums[0] += batch.loss_weights[i];
  grid_.allreduce_sum(sums, 2);
  r.weight_sum = sums[0];
  r.tokens = static_cast<int64_t>(sums[1]);
  attention_.reset_stats();
  params_.zero_grads();
  const double grad_scale = r.weight_sum > 0 ? 1.0 / r.weight_sum : 0.0;
  const double loss_sum = grid_.allreduce_sum(model_.forward_backward(batch, grad_scale));
  r.loss = r.weight_sum > 0 ? loss_sum / r.weight_sum : 0.0;
  r.grad_norm = global_grad_norm(params_);
  const double multiplier =
      options_.clip_grad_norm > 0 && r.grad_norm > options_.clip_grad_norm ? options_.clip_grad_norm / r.grad_norm : 1.0;
  r.lr = options_.schedule.at(steps_done_);
  adamw_step(params_, options_.adamw, r.lr, static_cast<int>(optimizer_steps_ + 1), multiplier);
  ++optimizer_steps_;
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
