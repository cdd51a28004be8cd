// partial_merge.cpp: see partial_merge.h.
#include "src/infer/partial_merge.h"

#include <cmath>
#include <limits>
#include <vector>

namespace rw::infer {

void merge_partials(const float* blocks, int n_blocks, int heads, int head_dim, float* out, float* lse) {
  const int64_t block = partial_block_floats(heads, head_dim);
  const int64_t lse_at = static_cast<int64_t>(heads) * head_dim;
  std::vector<double> acc(static_cast<std::size_t>(head_dim));
  for (int h = 0; h < heads; ++h) {
    double m = -std::numeric_limits<double>::infinity();
    for (int r = 0; r < n_blocks; ++r) m = std::fmax(m, static_cast<double>(blocks[r * block + lse_at + h]));
    float* o = out + static_cast<int64_t>(h) * head_dim;
    if (std::isinf(m) && m < 0) {  // no block saw a key
      for (int d = 0; d < head_dim; ++d) o[d] = 0.f;
      lse[h] = -std::numeric_limits<float>::infinity();
      continue;
    }
    double weight_sum = 0;
    for (double& a : acc) a = 0;
    for (int r = 0; r < n_blocks; ++r) {
      const float* b = blocks + r * block;
      const double l = b[lse_at + h];
      if (std::isinf(l) && l < 0) continue;
      const double w = std::exp(l - m);
      weight_sum += w;
      const float* ob = b + static_cast<int64_t>(h) * head_dim;
      for (int d = 0; d < head_dim; ++d) acc[static_cast<std::size_t>(d)] += w * ob[d];
    }
    for (int d = 0; d < head_dim; ++d) o[d] = static_cast<float>(acc[static_cast<std::size_t>(d)] / weight_sum);
    lse[h] = static_cast<float>(m + std::log(weight_sum));
  }
}

}  // namespace rw::infer
