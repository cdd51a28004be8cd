// memory_model.h: the bytes one rank of `ringworld train` holds at the peak of a step, derived
// from what the code allocates (not from a rule of thumb). Everything is fp32, as `train` computes
// by default; with TrainShape::bf16 (`train --precision bf16`) the buffers the model keeps in bf16
// (src/model/transformer.h: the gathered weights, the GEMM and attention inputs in the scratch
// region, the ring's K/V) count 2 bytes, FSDP's bf16 copy of the weight shards 2 bytes more per
// parameter / ranks, and the ring's backward a widened fp32 dout [N, hidden] (attn_row_dot).
// The CPU kernels' own fp32 temporaries of bf16 arguments (device/cpu: bf16 by conversion) are
// not counted: bf16 is planned for a GPU. The sources, in the order a step touches them:
//
//   at rest (src/train/fsdp_params.cpp)   per parameter unit, a shard of ceil(count / ranks)
//       elements on every rank: weights, grads, AdamW m and v (fp32 each) and a one-byte
//       weight-decay flag: 17 bytes per parameter / ranks.
//   the batch (src/data/batch.h)         tokens, targets, positions, segment ids (int32) and
//       loss weights (fp32) of the local tokens: 20 bytes per local token, and as much again
//       for the copy of the micro-batch in hand when a step runs in micro-batches.
//   one step (src/model/transformer_workspace.h, src/attention/ring_attention.cpp, device/cpu/):
//       the model's workspaces, allocated in the first step and kept: the residual stream, dx,
//       per layer the input, attention output [N, hidden] and lse [N, heads], a gradient
//       buffer as large as the largest unit, the batch on the device (and its staging copy),
//       and one scratch region that holds a layer's q/k/v with its FFN chunk or attention
//       gradients, or the loss head's chunk; besides them, per phase: one unit's weights
//       all-gathered (padded to ranks x shard), the ring's K/V double buffer and (backward)
//       three dK|dV accumulators, the attention kernels' scratch, the reduce-scatter buffers.
//   N = tokens on the rank in one pass = sequences per dp group (per micro-batch, when a step
//   runs in micro-batches: src/train/trainer.h) x seq_len / sp.
//
// The model evaluates every phase of the step at the last layer and reports the largest one
// with its items (the workspaces are in every phase). A freed buffer is assumed to leave the
// process (glibc returns large blocks to the system), and a buffer never written (the ring's
// second K/V slot on a ring of one) is not counted: resident memory only holds touched pages.
// Checked against peak RSS (tests/integration/test_planner.cpp).
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
