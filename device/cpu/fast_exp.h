// fast_exp.h: vectorisable exp for the softmax of the CPU attention kernels.
// exp(x) = 2^n * exp(r), n = round(x / ln2), r = x - n*ln2 (Cody-Waite split of ln2, so r is
// exact to fp32), |r| <= ln2/2; exp(r) by its degree-7 Taylor polynomial (truncation error
// below (ln2/2)^8/8! = 5e-9, under half an fp32 ulp). Measured max relative error against
// std::exp in double: see tests/unit/test_fast_exp.cpp. Arguments below -87 give exactly 0,
// including -inf (a masked score); arguments are at most 0 in the kernels (scores minus the
// running max), and anything above 88 is clamped.
#pragma once
#include <cstdint>
#include <cstring>

namespace rw::device::cpu {

inline float exp_fast(float x) {
  const float log2e = 1.44269504088896341f;
  const float ln2_hi = 0.693145751953125f;      // 13 significant bits: n*ln2_hi is exact
  const float ln2_lo = 1.42860682030941723e-6f;  // ln2 - ln2_hi
  float xc = x < -87.f ? -87.f : (x > 88.f ? 88.f : x);
  float n = __builtin_rintf(xc * log2e);
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
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return x < -87.f ? 0.f : p * two_n;
}

// x[i] = exp(x[i] - shift); returns the sum of the results. Vectorised.
float exp_shift_sum(float* x, int n, float shift);

// Returns max(x[0..n)), -inf for n == 0. Vectorised.
float max_of(const float* x, int n);

}  // namespace rw::device::cpu
