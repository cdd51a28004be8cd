// attention_tile_support.h: small pieces shared by the CPU attention kernels
// (attention_fast.cpp, attention_fwd_fused.cpp): block summaries for tile classification and
// the merge of two log-sum-exps (the element-wise mask is apply_mask of fast_exp.h).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "device/attention_mask.h"

namespace rw::device::cpu {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Per-block (min, max) of positions and segments: summaries[b * n_blocks + block].
inline std::vector<BlockSummary> summarize_blocks(const int32_t* pos, const int32_t* seg, int batch,
                                                  int n_tokens, int block) {
  const int n_blocks = (n_tokens + block - 1) / block;
  std::vector<BlockSummary> out(static_cast<std::size_t>(batch) * n_blocks);
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < n_blocks; ++i) {
      const int start = i * block, count = std::min(block, n_tokens - start);
      const std::size_t off = static_cast<std::size_t>(b) * n_tokens + start;
      out[static_cast<std::size_t>(b) * n_blocks + i] = summarize_block(pos + off, seg + off, count);
    }
  return out;
}

// log(exp(a) + exp(b)), exact for -inf on either side.
inline float merged_lse(float a, float b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  const float hi = a > b ? a : b;
  return hi + std::log1p(std::exp(-std::fabs(a - b)));
}

}  // namespace rw::device::cpu
