// train_shape.h: what the planner needs to know about a training run: the model, the process
// grid (dp x sp, FSDP over all dp * sp ranks), the global batch, and the tile and chunk sizes of
// `ringworld train` (the same names and defaults as src/train/run_plan.h and
// src/model/transformer.h). Pure data: no MPI, no device.
#pragma once
#include <cstdint>
#include <string>

#include "src/attention/layout.h"
#include "src/model/llama_config.h"

namespace rw::plan {

struct TrainShape {
  model::LlamaConfig model;
  int64_t seq_len = 1024;             // tokens per sequence
  int dp = 1, sp = 1;                 // data-parallel groups x ranks per ring
  int64_t sequences_per_group = 1;    // global batch / dp (train: global-batch-tokens / seq-len / dp)
  int64_t micro_batch_sequences = 0;  // of a dp group per micro-batch (train --micro-batch-tokens); 0: all
  Layout layout = Layout::zigzag;
  int block_q = 256, block_k = 256;   // attention tiles (train --block-q/--block-k)
  int64_t ffn_chunk_tokens = 1024;    // train --ffn-chunk
  int64_t loss_chunk_tokens = 512;    // TransformerOptions::loss_chunk_tokens (not an option of train)
  int kernel_threads = 1;             // OpenMP threads of the CPU attention kernels (OMP_NUM_THREADS)
  bool bf16 = false;                  // train --precision bf16: the bf16 buffers of src/model/transformer.h

  int ranks() const { return dp * sp; }
  int64_t local_tokens_per_sequence() const { return seq_len / sp; }
  int64_t local_tokens() const { return sequences_per_group * local_tokens_per_sequence(); }
  // What one forward/backward pass holds: a micro-batch's sequences, or all of them.
  int64_t pass_sequences() const { return micro_batch_sequences > 0 ? micro_batch_sequences : sequences_per_group; }
  int64_t pass_tokens() const { return pass_sequences() * local_tokens_per_sequence(); }
  int64_t micro_batches() const { return sequences_per_group / pass_sequences(); }
  // Throws InputError naming the problem (indivisible sequence, non-positive sizes, bad model).
  void validate() const;
  std::string describe() const;  // one line
};

}  // namespace rw::plan
