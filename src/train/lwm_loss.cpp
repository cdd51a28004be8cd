// lwm_loss.cpp: see lwm_loss.h.
#include "src/train/lwm_loss.h"

namespace rw::train {

std::array<double, 2> kind_weight_sums(const data::LocalBatch& batch, const model::LlamaConfig& config) {
  std::array<double, 2> sums = {0.0, 0.0};
  for (std::size_t i = 0; i < batch.loss_weights.size(); ++i) {
    const int32_t target = batch.targets[i];
    if (target < 0) continue;
    sums[config.has_vision() && target >= config.vocab_size ? 1 : 0] += batch.loss_weights[i];
  }
  return sums;
}

void apply_lwm_loss_weights(data::LocalBatch& batch, const model::LlamaConfig& config,
                            const std::array<double, 2>& global_sums) {
  if (!config.has_vision()) return;
  const double total = global_sums[0] + global_sums[1];
  double scale[2];
  for (int k = 0; k < 2; ++k) scale[k] = global_sums[k] > 0 ? 0.5 * total / global_sums[k] : 0.0;
  for (std::size_t i = 0; i < batch.loss_weights.size(); ++i) {
    const int32_t target = batch.targets[i];
    if (target < 0) continue;
    batch.loss_weights[i] =
        static_cast<float>(static_cast<double>(batch.loss_weights[i]) * scale[target >= config.vocab_size ? 1 : 0]);
  }
}

double lwm_loss(const std::array<double, 2>& loss_sums, const std::array<double, 2>& weight_sums) {
  double loss = 0;
  for (int k = 0; k < 2; ++k)
    if (weight_sums[k] > 0) loss += 0.5 * loss_sums[k] / weight_sums[k];
  return loss;
}

}  // namespace rw::train
