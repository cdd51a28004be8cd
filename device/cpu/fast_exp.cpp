// fast_exp.cpp: the vectorised row loops of the attention kernels (the online softmax, the
// element-wise mask, the backward's dS), each compiled for three instruction sets and chosen
// at run time (cpu_dispatch.h).
#include "device/cpu/fast_exp.h"

#include <limits>

#include "device/attention_mask.h"
#include "device/cpu/cpu_dispatch.h"

namespace rw::device::cpu {

RW_CPU_CLONES float exp_shift_sum(float* x, int n, float shift) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) {
    float e = exp_fast(x[i] - shift);
    x[i] = e;
    sum += e;
  }
  return sum;
}

RW_CPU_CLONES float max_of(const float* x, int n) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

RW_CPU_CLONES void apply_mask(float* s, int rows, int cols, int ld, const int32_t* q_pos, const int32_t* q_seg,
                              const int32_t* k_pos, const int32_t* k_seg, bool causal) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int r = 0; r < rows; ++r) {
    float* row = s + static_cast<std::size_t>(r) * ld;
    const int32_t qp = q_pos[r], qs = q_seg[r];
#pragma omp simd
    for (int c = 0; c < cols; ++c) row[c] = key_visible(qp, qs, k_pos[c], k_seg[c], causal) ? row[c] : neg_inf;
  }
}

RW_CPU_CLONES void ds_from_dp(const float* p, float* dp, int n, float delta) {
#pragma omp simd
  for (int c = 0; c < n; ++c) dp[c] = p[c] * (dp[c] - delta);
}

}  // namespace rw::device::cpu
