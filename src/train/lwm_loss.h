// lwm_loss.h: LWM's vision-language loss through the ordinary weighted mean. A vision model's
// targets are of two kinds (LlamaConfig: text ids < vocab_size, vision ids >= vocab_size) and
// LWM trains on
//   loss = 0.5 x sum_vision(w CE) / sum_vision(w) + 0.5 x sum_text(w CE) / sum_text(w)
// over the global batch (a kind with no weight contributes 0, as LWM's masked mean with
// max(count, eps)). Scaling each target's weight w by 0.5 W / W_kind (W = W_text + W_vision, the
// global sums) makes the trainer's sum(w' CE) / W exactly that, so the model, the ring and the
// gradient scale 1/W stay as they are. Text-only models (vision_vocab_size 0): no scaling at all
// (the loss is bit for bit the plain weighted mean).
#pragma once
#include <array>

#include "src/data/batch.h"
#include "src/model/llama_config.h"

namespace rw::train {

// Loss weights of the batch's targets (target >= 0) by kind: {text, vision}. The global batch's
// are these summed over the ranks.
std::array<double, 2> kind_weight_sums(const data::LocalBatch& batch, const model::LlamaConfig& config);

// Scales the batch's loss weights in place by 0.5 (W_text + W_vision) / W_kind of each target's
// kind (global sums); does nothing for a text-only model.
void apply_lwm_loss_weights(data::LocalBatch& batch, const model::LlamaConfig& config,
                            const std::array<double, 2>& global_sums);

// LWM's loss from the kinds' sums of w CE and of w (0.5 x each kind's mean; a kind without
// weight contributes 0).
double lwm_loss(const std::array<double, 2>& loss_sums, const std::array<double, 2>& weight_sums);

}  // namespace rw::train
