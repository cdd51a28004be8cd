// partial_merge.h: the exact combination of attention results over disjoint key sets, for one
// query token: decoding's merge of every rank's attention over its KV-cache shard.
//   A partial (out_r, lse_r) per head: out_r normalised over its keys, lse_r = log sum over its
//   keys of exp(score); lse_r = -inf when it saw no key (out_r is then ignored).
//   L = log sum_r exp(lse_r),  out = sum_r exp(lse_r - L) out_r   (the softmax over the union).
// Packed block (what each rank contributes to the all-gather): out [heads, head_dim] then lse
// [heads], fp32. The merge runs in double, over the blocks in the order given, so every rank that
// merges the same gathered blocks gets bit-identical results. A head no block saw: out 0, lse -inf.
#pragma once
#include <cstdint>

namespace rw::infer {

inline int64_t partial_block_floats(int heads, int head_dim) { return static_cast<int64_t>(heads) * (head_dim + 1); }

// blocks: n_blocks packed blocks, one after another. out [heads, head_dim], lse [heads].
void merge_partials(const float* blocks, int n_blocks, int heads, int head_dim, float* out, float* lse);

}  // namespace rw::infer
