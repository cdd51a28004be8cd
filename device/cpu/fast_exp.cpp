// fast_exp.cpp: the vectorised row loops of the online softmax.
#include "device/cpu/fast_exp.h"

#include <limits>

namespace rw::device::cpu {

float exp_shift_sum(float* x, int n, float shift) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) {
    float e = exp_fast(x[i] - shift);
    x[i] = e;
    sum += e;
  }
  return sum;
}

float max_of(const float* x, int n) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

}  // namespace rw::device::cpu
