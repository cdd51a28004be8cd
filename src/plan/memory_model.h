// memory_model.h: the bytes one rank of `ringworld train` holds at the peak of a step, derived
// from what the code allocates (not from a rule of thumb). Everything is fp32, as ringworld
// computes today. The sources, in the order a step touches them:
//
//   at rest (src/train/fsdp_params.cpp)   per parameter unit, a shard of ceil(count / ranks)
//       elements on every rank: weights, grads, AdamW m and v (fp32 each) and a one-byte
//       weight-decay flag: 17 bytes per parameter / ranks.
//   the batch (src/data/batch.h)         tokens, targets, positions, segment ids (int32) and
//       loss weights (fp32) of the local tokens: 20 bytes per local token, and as much again
//       for the copy of the micro-batch in hand when a step runs in micro-batches.
//   one step (src/model/transformer.cpp, src/attention/ring_attention.cpp, device/cpu/):
//       the forward keeps per layer its input, its attention output [N, hidden] and lse
//       [N, heads]; one unit's weights are all-gathered at a time (padded to ranks x shard);
//       a layer's working set (norm, q/k/v, FFN chunk buffers, the ring's K/V double buffer)
//       comes and goes; the backward walks the layers down, recomputing a layer's forward up
//       to its FFN input, with dx, a gradient buffer as large as the largest unit seen so far,
//       the ring's K/V double buffer, three dK|dV accumulators, and the reduce-scatter buffer.
//   N = tokens on the rank in one pass = sequences per dp group (per micro-batch, when a step
//   runs in micro-batches: src/train/trainer.h) x seq_len / sp.
//
// The model evaluates every phase of the step at the layer where it is largest (the last
// layer: all saved activations are live) and reports the largest one with its items. A freed
// buffer is assumed to leave the process (glibc returns large blocks to the system), and a
// buffer never written (the ring's second K/V slot on a ring of one) is not counted: resident
// memory only holds touched pages. Not every `v = {}` in the code frees: assigning an empty
// braced list to a std::vector keeps its capacity (transformer.cpp's `x = {}` after the loss
// head and `n2 = {}; g = {}; ...` in layer_backward), so those buffers are counted as live to
// the end of their scope, as they are. Checked against a malloc tracer (live bytes at the peak
// within 2% of this model) and against peak RSS (tests/integration/test_planner.cpp).
#pragma once
#include <string>
#include <vector>

#include "src/plan/train_shape.h"

namespace rw::plan {

struct MemoryItem {
  std::string name;
  double n_bytes = 0;
  bool is_parameter = false;  // gathered weights, gradient and reduce-scatter buffers (not activations)
};

struct MemoryPhase {
  std::string name;               // e.g. "backward, layer 31, ring attention"
  std::vector<MemoryItem> items;  // what is live besides the at-rest state and the batch
  double n_bytes() const;
};

struct MemoryPrediction {
  double weight_bytes = 0, grad_bytes = 0, adam_moment_bytes = 0, decay_flag_bytes = 0;  // FSDP shards
  double batch_bytes = 0;
  double reserve_bytes = 0;           // the process before it allocates anything (see device_table.h)
  double saved_activation_bytes = 0;  // all layers' saved tensors (live at the peak)
  MemoryPhase peak;                   // the largest phase of the step
  std::vector<MemoryPhase> phases;    // every phase evaluated, in step order

  double at_rest_bytes() const { return weight_bytes + grad_bytes + adam_moment_bytes + decay_flag_bytes; }
  double peak_activation_bytes() const;  // the peak's items that are not parameter buffers
  double total_bytes() const { return reserve_bytes + at_rest_bytes() + batch_bytes + peak.n_bytes(); }
};

// shape must be valid (TrainShape::validate).
MemoryPrediction predict_memory(const TrainShape& shape, double reserve_bytes);

// The largest micro-batch (sequences of a dp group per pass, a divisor of
// shape.sequences_per_group) whose predicted peak fits in capacity_bytes per rank; 0 when not
// even one sequence per pass fits.
int64_t largest_fitting_micro_batch(TrainShape shape, double capacity_bytes, double reserve_bytes);

// Ring sizes the layout can split shape.seq_len over (sp with seq_len % sp == 0, or
// % (2 sp) for zigzag), ascending, up to max_sp.
std::vector<int> possible_ring_sizes(const TrainShape& shape, int max_sp);

// The smallest ring (sp, with shape.dp kept) whose predicted peak fits in capacity_bytes per
// rank; 0 when no ring up to max_sp fits.
int smallest_fitting_ring(TrainShape shape, double capacity_bytes, double reserve_bytes, int max_sp);

}  // namespace rw::plan
