// memory_model.cpp: see memory_model.h. Each phase lists the buffers that exist at that point
// of Transformer::forward_backward (src/model/transformer.cpp: its workspaces, in every phase)
// and the ring (src/attention/ring_attention.cpp) and FSDP (src/train/fsdp_params.cpp), named as
// in the code.
#include "src/plan/memory_model.h"

#include <algorithm>
#include <cmath>

#include "src/common/fatal.h"
#include "src/common/transfer_limits.h"

namespace rw::plan {
namespace {

constexpr double kF32 = 4, kI32 = 4, kF64 = 8;

struct Sizes {
  double n_tokens, n_local, hidden, kv, heads, head_dim, inter, vocab, layers;
  double ffn_rows, loss_rows, block_q, block_k;
  double fwd_threads, bwd_threads;  // OpenMP threads that allocate scratch in the attention kernels
  double ring_slots;                // K/V buffers written: 2 on a ring, 1 on a ring of one rank
};

Sizes sizes_of(const TrainShape& s) {
  const model::LlamaConfig& m = s.model;
  Sizes z;
  z.n_tokens = double(s.pass_tokens());  // activations: one micro-batch at a time
  z.n_local = double(s.local_tokens_per_sequence());
  z.hidden = double(m.hidden_size);
  z.kv = double(m.kv_width());
  z.heads = double(m.num_attention_heads);
  z.head_dim = double(m.head_dim());
  z.inter = double(m.intermediate_size);
  z.vocab = double(m.total_vocab_size());  // a vision model's logits: both heads' columns
  z.layers = double(m.num_hidden_layers);
  z.ffn_rows = double(std::min(s.ffn_chunk_tokens, s.pass_tokens()));
  z.loss_rows = double(std::min(s.loss_chunk_tokens, s.pass_tokens()));
  z.block_q = double(std::min<int64_t>(s.block_q, s.local_tokens_per_sequence()));
  z.block_k = double(std::min<int64_t>(s.block_k, s.local_tokens_per_sequence()));
  // attention_fast.cpp: the forward runs on every OpenMP thread; the backward on at most one
  // thread per (sequence, kv head, key block) task.
  z.fwd_threads = double(s.kernel_threads);
  const double bwd_tasks = double(s.pass_sequences()) * double(m.num_key_value_heads) *
                           std::ceil(z.n_local / z.block_k);
  z.bwd_threads = std::min(double(s.kernel_threads), bwd_tasks);
  z.ring_slots = s.sp > 1 ? 2 : 1;
  return z;
}

struct Units {
  double embed, layer, head;                 // elements of each unit
  double embed_padded, layer_padded, head_padded;  // gathered / reduce-scatter size: ranks x shard
  double embed_shard, layer_shard, head_shard;
};

Units units_of(const TrainShape& s) {
  const std::vector<model::ParamUnit> units = model::parameter_units(s.model);
  const int64_t ranks = s.ranks();
  auto shard = [&](int64_t count) { return double((count + ranks - 1) / ranks); };
  Units u;
  u.embed = double(units.front().count);
  u.layer = double(units[1].count);
  u.head = double(units.back().count);
  u.embed_shard = shard(units.front().count);
  u.layer_shard = shard(units[1].count);
  u.head_shard = shard(units.back().count);
  u.embed_padded = u.embed_shard * double(ranks);
  u.layer_padded = u.layer_shard * double(ranks);
  u.head_padded = u.head_shard * double(ranks);
  return u;
}

}  // namespace

double MemoryPrediction::peak_activation_bytes() const {
  double n = 0;
  for (const MemoryItem& item : peak.items)
    if (!item.is_parameter) n += item.n_bytes;
  return n;
}

double MemoryPhase::n_bytes() const {
  double n = 0;
  for (const MemoryItem& item : items) n += item.n_bytes;
  return n;
}

MemoryPrediction predict_memory(const TrainShape& shape, double reserve_bytes) {
  const Sizes z = sizes_of(shape);
  const Units u = units_of(shape);
  const double N = z.n_tokens, H = z.hidden, KV = z.kv;

  MemoryPrediction p;
  p.reserve_bytes = reserve_bytes;
  // fsdp_params.cpp: four fp32 arrays and a uint8 decay flag per unit, shard_count long each.
  double shard_elems = 0;
  for (const model::ParamUnit& unit : model::parameter_units(shape.model))
    shard_elems += double((unit.count + shape.ranks() - 1) / shape.ranks());
  const double W = shape.bf16 ? 2 : kF32;  // the working precision's bytes (transformer.h)
  p.weight_bytes = kF32 * shard_elems + (shape.bf16 ? 2 * shard_elems : 0);  // + FSDP's bf16 copy
  p.grad_bytes = kF32 * shard_elems;
  p.adam_moment_bytes = 2 * kF32 * shard_elems;
  p.decay_flag_bytes = 1 * shard_elems;
  p.batch_bytes = (4 * kI32 + kF32) * double(shape.local_tokens()) + (shape.micro_batches() > 1 ? (4 * kI32 + kF32) * N : 0);

  const std::string last = std::to_string(int64_t(z.layers) - 1);
  const double c = z.ffn_rows, I = z.inter, cl = z.loss_rows, V = z.vocab;
  // The device model's workspaces (src/model/transformer_workspace.h): allocated in the first
  // step and live to the end, so part of every phase. The scratch region holds q/k/v and one
  // layer phase at a time, or the loss head's chunk.
  const double qkv = W * (2 * N * H + 2 * N * KV) + kF32 * N;  // n1, q, k, v (working); inv1
  // n2 (= fp32 dnorm: fp32-sized), inv2, dn2; g, u, a (= da), dg, du (working)
  const double ffn_bwd = kF32 * (2 * c * H + c) + W * 5 * c * I;
  const double attn_grads = kF32 * (2 * N * H + 2 * N * KV);  // dout (= dn1: fp32-sized), dq (= dnorm1), dk, dv
  const double head = W * (cl * H + cl * V) + kF32 * (cl * H + cl + cl * V);  // nf, dlogits (working); dnf, inv, logits
  const double layer_scratch = qkv + std::max(ffn_bwd, attn_grads);
  const std::vector<MemoryItem> workspace = {
      {"x / x2: the residual stream [N, hidden] (the backward's recomputed FFN input)", kF32 * N * H},
      {"dx: gradient of the residual stream [N, hidden]", kF32 * N * H},
      {"saved per layer (input, attention output [N, hidden], lse [N, heads]) x " + std::to_string(int64_t(z.layers)) +
           " layers",
       z.layers * kF32 * (2 * N * H + N * z.heads)},
      {layer_scratch >= head ? "scratch: n1, q [N, hidden], k, v [N, kv_width] and " +
                                   std::string(ffn_bwd >= attn_grads ? "the FFN backward chunk [chunk, intermediate]"
                                                                     : "the attention gradients dout, dq, dk, dv")
                             : "scratch: the loss chunk's normed rows, logits and their gradient [chunk, vocab]",
       std::max(layer_scratch, head)},
      {"the batch on the device and its pinned staging copy", 2 * (4 * kI32 + kF32) * N},
      {"gradient buffer (the largest unit)", kF32 * std::max({u.embed, u.layer, u.head}), true},
  };
  auto phase = [&](const std::string& name, std::vector<MemoryItem> transient) {
    MemoryPhase ph{name, workspace};
    for (MemoryItem& item : transient) ph.items.push_back(std::move(item));
    p.phases.push_back(std::move(ph));
  };

  const MemoryItem layer_weights{"all-gathered layer weights (one unit)", W * u.layer_padded, true};
  // ring_attention.cpp: per slot K|V values (working precision) and pos|seg (int32) of the shard in hand.
  const double ring_slot = W * 2 * N * KV + kI32 * 2 * N;
  const MemoryItem ring_kv{"ring K|V + pos|seg buffers (" + std::to_string(int(z.ring_slots)) + " slot(s))",
                           z.ring_slots * ring_slot};
  // attention_fast.cpp, forward: per thread scores [bq, bk], acc [bq, head_dim], row max and sum [bq].
  const MemoryItem fwd_scratch{"attention kernel scratch (per thread tiles)",
                               z.fwd_threads * kF32 * (z.block_q * z.block_k + z.block_q * z.head_dim + 2 * z.block_q)};
  phase("forward, embedding", {{"all-gathered embedding", W * u.embed_padded, true}});
  phase("forward, layer " + last + ", ring attention", {ring_kv, fwd_scratch, layer_weights});
  phase("forward, layer " + last + ", FFN", {layer_weights});
  // cross_entropy's per-token doubles (the kernel's own, per loss chunk).
  phase("loss head", {{"all-gathered final norm + lm_head", W * u.head_padded, true},
                      {"cross entropy per-token sums [chunk] (fp64)", kF64 * cl}});
  // FsdpParams::reduce_grad: a padded copy of the unit and the shard result; Open MPI's
  // reduce_scatter_block (tuned, basic linear: reduce to rank 0, then scatter) holds one more
  // full-size buffer on rank 0, and the reported peak is the maximum over ranks.
  // ProcessGrid::reduce_scatter_sum splits a reduce-scatter that would move more than one MPI
  // call may (src/common/transfer_limits.h) into pieces, each packed into a buffer of ranks x
  // piece floats; MPI's temporary is then one piece's size.
  const double ranks = double(shape.ranks());
  const double piece = double(collective_piece_elems(kMaxBytesPerMpiCall, std::size_t(shape.ranks()), sizeof(float)));
  auto reduce_items = [&](const std::string& unit, double padded, double shard_len) {
    const bool split = shard_len > piece;
    const double per_call = split ? ranks * piece : padded;
    std::vector<MemoryItem> items{{"reduce-scatter send buffer (" + unit + ", padded)", kF32 * padded, true},
                                  {"reduce-scatter result (" + unit + " shard)", kF32 * shard_len, true},
                                  {"MPI reduce temporary on rank 0 (" + unit + ")", kF32 * per_call, true}};
    if (split) items.push_back({"reduce-scatter piece buffer (" + unit + ", split into pieces)", kF32 * per_call, true});
    return items;
  };
  phase("loss head, gradient reduce-scatter", reduce_items("head", u.head_padded, u.head_shard));
  // ring backward: K|V slots, dK|dV accumulators (this step's, received, sent), delta [N, heads];
  // the kernel gives each thread but the first a private dq [N, hidden], and p, dp tiles.
  // bf16: dout widened to fp32 [N, hidden] for attn_row_dot.
  const MemoryItem ring_bwd{"ring dK|dV accumulators (3) and delta [N, heads]" + std::string(shape.bf16 ? ", fp32 dout" : ""),
                            kF32 * (3 * 2 * N * KV + N * z.heads + (shape.bf16 ? N * H : 0))};
  const MemoryItem bwd_scratch{"attention kernel scratch (private dq per extra thread, p/dp tiles)",
                               kF32 * ((z.bwd_threads - 1) * N * H + z.bwd_threads * 2 * z.block_q * z.block_k)};
  phase("backward, layer " + last + ", FFN", {layer_weights});
  phase("backward, layer " + last + ", ring attention", {layer_weights, ring_kv, ring_bwd, bwd_scratch});
  phase("backward, layer " + last + ", gradient reduce-scatter", reduce_items("layer", u.layer_padded, u.layer_shard));
  phase("backward, embedding gradient", reduce_items("embedding", u.embed_padded, u.embed_shard));

  p.peak = *std::max_element(p.phases.begin(), p.phases.end(),
                             [](const MemoryPhase& a, const MemoryPhase& b) { return a.n_bytes() < b.n_bytes(); });
  for (const MemoryItem& item : p.peak.items)
    if (item.name.rfind("saved", 0) == 0) p.saved_activation_bytes += item.n_bytes;
  return p;
}

std::vector<int> possible_ring_sizes(const TrainShape& shape, int max_sp) {
  // zigzag cuts the sequence into 2 sp chunks; the others need seq_len % sp == 0.
  const int64_t splittable = shape.layout == Layout::zigzag ? shape.seq_len / 2 : shape.seq_len;
  std::vector<int> sizes;
  if (shape.layout == Layout::zigzag && shape.seq_len % 2 != 0) return sizes;
  for (int64_t d = 1; d * d <= splittable; ++d) {
    if (splittable % d != 0) continue;
    if (d <= max_sp) sizes.push_back(static_cast<int>(d));
    const int64_t other = splittable / d;
    if (other != d && other <= max_sp) sizes.push_back(static_cast<int>(other));
  }
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}

int64_t largest_fitting_micro_batch(TrainShape shape, double capacity_bytes, double reserve_bytes) {
  for (int64_t m = shape.sequences_per_group; m >= 1; --m) {
    if (shape.sequences_per_group % m != 0) continue;
    shape.micro_batch_sequences = m;
    if (predict_memory(shape, reserve_bytes).total_bytes() <= capacity_bytes) return m;
  }
  return 0;
}

int smallest_fitting_ring(TrainShape shape, double capacity_bytes, double reserve_bytes, int max_sp) {
  for (int sp : possible_ring_sizes(shape, max_sp)) {
    shape.sp = sp;
    if (predict_memory(shape, reserve_bytes).total_bytes() <= capacity_bytes) return sp;
  }
  return 0;
}

}  // namespace rw::plan
