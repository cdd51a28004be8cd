// step_time_model.h: FLOPs of one training step and its predicted time on a rank, from a peak
// FLOP/s and the bandwidth of one ring link, following what `ringworld train` executes:
//   dense    every projection of the forward, the forward of each layer again in its backward
//            (everything but attention is recomputed), the backward GEMMs, the loss head:
//            per layer and token 16 h^2 + 16 h kv + 22 h i, plus 6 h vocab for the head
//            (h hidden, kv = kv_heads * head_dim, i intermediate).
//   attention 4 h FLOPs per visible (query, key) pair forward, 10 h backward (scores
//            recomputed from lse, then dP, dV, dQ, dK), causal: s (s + 1) / 2 pairs per
//            sequence, a share 1/sp of them per rank (zigzag and striped balance it).
//   ring     per layer, sp steps forward and backward; step t's compute hides the transfer of
//            the next shard (K, V fp32 and pos, seg int32: (8 kv + 8) bytes per token; in the
//            backward also the dK|dV accumulator, 8 kv bytes per token) when it takes longer;
//            the backward's last dK|dV hop is never hidden. A step lasts max(compute, transfer).
//   FSDP     each unit all-gathered in the forward and again in the backward (but the
//            embedding), its gradient reduce-scattered: (ranks - 1) / ranks of the padded unit
//            over one link each time, blocking (not overlapped); once per micro-batch; the link
//            between nodes when the grid spans nodes.
//   A ring step waits for its slowest hop: a ring that crosses nodes moves at the inter-node rate.
// The RingAttention condition (docs/ring-attention.md): a ring step hides its transfer when
// the block of c = seq_len / sp tokens that travels satisfies c >= F * bytes per token /
// (k h f B), k = 4 (forward) or 10 (backward), f the share of a full block pair computed per
// step (1/2 for causal zigzag/striped, 1 for contiguous, whose slowest rank computes full
// blocks). For bf16 K/V, non-causal, one K/V head per query head this is the paper's c >= F/B.
// Not modelled: memory-bound work (norms, RoPE, softmax bookkeeping), kernel efficiency below
// peak (use --efficiency), packed documents (they skip attention tiles: fewer FLOPs).
#pragma once

#include "src/plan/train_shape.h"

namespace rw::plan {

struct StepFlops {
  double model_flops = 0;           // whole step, all ranks: 3 x forward as train counts it (MFU basis)
  double dense_flops_per_rank = 0;  // executed, recomputation included
  double attention_flops_per_rank = 0;
  double executed_per_rank() const { return dense_flops_per_rank + attention_flops_per_rank; }
};

// 3 x (24 b s h^2 + 4 b s^2 h / 2) x layers over the global batch: the RingAttention paper's
// count that `ringworld train` prints GFLOP/s and MFU with (train::forward_flops).
double paper_forward_flops(const model::LlamaConfig& config, double sequences, double seq_len);

StepFlops step_flops(const TrainShape& shape);

struct RingCondition {
  double block_tokens = 0;                  // c: tokens of one sequence that travel per ring step
  double fwd_step_compute_s = 0, fwd_step_transfer_s = 0;  // one middle step, slowest rank
  double bwd_step_compute_s = 0, bwd_step_transfer_s = 0;
  double fwd_min_block_tokens = 0, bwd_min_block_tokens = 0;  // c at which compute == transfer
  bool fwd_hidden() const { return fwd_step_compute_s >= fwd_step_transfer_s; }
  bool bwd_hidden() const { return bwd_step_compute_s >= bwd_step_transfer_s; }
};

struct StepTimePrediction {
  StepFlops flops;
  RingCondition ring;
  double flops_per_s = 0;       // peak x efficiency
  double link_bytes_per_s = 0;       // the rings' link
  double fsdp_link_bytes_per_s = 0;  // the collectives' link
  double dense_s = 0;           // dense FLOPs at flops_per_s
  double attention_compute_s = 0;  // attention FLOPs of the slowest rank at flops_per_s
  double ring_exposed_s = 0;    // transfer time the attention compute does not hide, all layers
  double fsdp_s = 0;            // all-gathers and reduce-scatters
  double step_s() const { return dense_s + attention_compute_s + ring_exposed_s + fsdp_s; }
};

// flops_per_s: the rate one rank's kernels reach; ring_link_bytes_per_s: one direction of the
// slowest link of the rings; fsdp_link_bytes_per_s: of the slowest link the grid-wide
// collectives cross (both: src/plan/node_links.h).
StepTimePrediction predict_step_time(const TrainShape& shape, double flops_per_s, double ring_link_bytes_per_s,
                                     double fsdp_link_bytes_per_s);
// Every transfer over one kind of link.
inline StepTimePrediction predict_step_time(const TrainShape& shape, double flops_per_s, double link_bytes_per_s) {
  return predict_step_time(shape, flops_per_s, link_bytes_per_s, link_bytes_per_s);
}

}  // namespace rw::plan
