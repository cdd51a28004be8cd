// train_shape.cpp
#include "src/plan/train_shape.h"

#include "src/common/input_error.h"

namespace rw::plan {

void TrainShape::validate() const {
  model.validate();
  if (dp < 1 || sp < 1) throw InputError("dp and sp must be at least 1 (got dp " + std::to_string(dp) + ", sp " + std::to_string(sp) + ")");
  if (seq_len < 1) throw InputError("seq-len must be positive");
  if (seq_len > (int64_t(1) << 31) - 1) throw InputError("seq-len " + std::to_string(seq_len) + " is beyond what train accepts (2^31 - 1)");
  check_ring_split(layout, seq_len, sp);
  if (sequences_per_group < 1) throw InputError("each dp group needs at least one sequence per step");
  if (micro_batch_sequences < 0 || (micro_batch_sequences > 0 && sequences_per_group % micro_batch_sequences != 0))
    throw InputError("a micro-batch of " + std::to_string(micro_batch_sequences) + " sequence(s) per dp group does not divide its " +
                     std::to_string(sequences_per_group));
  if (block_q < 1 || block_k < 1 || ffn_chunk_tokens < 1 || loss_chunk_tokens < 1)
    throw InputError("--block-q, --block-k and --ffn-chunk must be positive");
  if (kernel_threads < 1) throw InputError("--threads must be at least 1");
}

std::string TrainShape::describe() const {
  return "seq_len " + std::to_string(seq_len) + ", dp " + std::to_string(dp) + " x sp " + std::to_string(sp) + " = " +
         std::to_string(ranks()) + " ranks, " + std::to_string(sequences_per_group) + " sequence(s) per dp group, " +
         layout_name(layout) + " layout, " + std::to_string(local_tokens()) + " tokens per rank";
}

}  // namespace rw::plan
