// fast_exp.h: vectorisable exp for the softmax of the CPU attention kernels, and the kernels
// vectorised row loops (fast_exp.cpp).
// exp(x) = 2^n * exp(r), n = round(x / ln2), r = x - n*ln2 (Cody-Waite split of ln2, so r is
// exact to fp32), |r| <= ln2/2; exp(r) by its degree-7 Taylor polynomial (truncation error
// below (ln2/2)^8/8! = 5e-9, under half an fp32 ulp). Measured max relative error against
// std::exp in double: see tests/unit/test_fast_exp.cpp. Arguments below -87 give exactly 0,
// including -inf (a masked score); arguments are at most 0 in the kernels (scores minus the
// running max), and anything above 88 is clamped.
#pragma once
#include <cstdint>

namespace rw::device::cpu {

// Selects only, the bits of 2^n by __builtin_bit_cast: loops calling it vectorise when the whole
// file is compiled for SSE4.1, AVX2 or AVX-512 (the former memcpy kept GCC 12 from vectorising
// it below AVX-512). GCC 12 does not if-convert it inside the x86-64-v2/v3 clones of
// fast_exp.cpp, though: there only the v4 (AVX-512) clone of exp_shift_sum is vectorised.
inline float exp_fast(float x) {
  const float log2e = 1.44269504088896341f;
  const float ln2_hi = 0.693145751953125f;      // 13 significant bits: n*ln2_hi is exact
  const float ln2_lo = 1.42860682030941723e-6f;  // ln2 - ln2_hi
  float xc = x < -87.f ? -87.f : x;
  xc = xc > 88.f ? 88.f : xc;
  const float n = __builtin_rintf(xc * log2e);
  float r = xc - n * ln2_hi;
  r = r - n * ln2_lo;
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const float two_n = __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);
  const float e = p * two_n;
  return x < -87.f ? 0.f : e;
}

// The row loops below are vectorised for the CPU they run on (cpu_dispatch.h).

// x[i] = exp(x[i] - shift); returns the sum of the results.
float exp_shift_sum(float* x, int n, float shift);

// Returns max(x[0..n)), -inf for n == 0.
float max_of(const float* x, int n);

// Sets the entries of a rows x cols score tile (row stride ld) whose key the row's query may
// not see (device/attention_mask.h) to -inf.
void apply_mask(float* s, int rows, int cols, int ld, const int32_t* q_pos, const int32_t* q_seg,
                const int32_t* k_pos, const int32_t* k_seg, bool causal);

// dp[c] = p[c] * (dp[c] - delta) for c in [0, n): the backward's dS from dP.
void ds_from_dp(const float* p, float* dp, int n, float delta);

}  // namespace rw::device::cpu
