// forward_io.h: the files of the `forward` tool. Input: tokens int32 [batch, seq]; optional
// targets int32 (default: tokens shifted left by one, last -1), loss_weights float32 (default 1),
// segment_ids and positions int32 (defaults: one document, the token index). Output: logits
// float32 [batch, seq, vocab], loss (scalar float64), and optionally /grads/<name>.
// Each rank reads and writes its own tokens (ring layout runs) only. Free of <hdf5.h>.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/common/ring_layout.h"
#include "src/common/local_batch.h"
#include "src/common/llama_config.h"
#include "io/sharded_tensors.h"

namespace rw::io {

struct ForwardProblem {
  int64_t batch = 0, seq_len = 0;
};

// Collective. Validates the datasets (names, dtypes, shapes; token ids and targets inside the
// vocabulary) and returns this rank's tokens in local order. Throws InputError (the same on
// every rank: call mpi::agree_on_error around it) naming the problem.
data::LocalBatch read_forward_input(const std::string& path, int64_t vocab_size, Layout layout, int ring_size,
                                    int ring_rank, ForwardProblem* problem);

// Collective, atomic: logits of this rank's tokens, the loss, and (if grads) /grads/<name>.
void write_forward_output(const std::string& path, const model::LlamaConfig& config, const ForwardProblem& problem,
                          const std::vector<TokenRun>& runs, const float* logits, double loss,
                          ShardedTensors* grads);

}  // namespace rw::io
