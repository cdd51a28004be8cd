// test_fast_exp.cpp: the vectorised exp and row reductions of the CPU softmax.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "device/cpu/fast_exp.h"

using rw::device::cpu::exp_fast;

TEST_CASE("exp_fast matches exp to a few ulps over the softmax range", "[exp]") {
  // Basis: exp(r) polynomial truncation < 5e-9 relative (half an ulp), plus about one rounding
  // per fp32 operation on ~10 operations, partly cancelling: we allow 4 ulps (4 * FLT_EPSILON
  // relative). The softmax argument is at most 0, and results below 2^-126 are flushed to 0.
  double worst = 0;
  for (int i = 0; i <= 2000000; ++i) {
    float x = -87.f + 87.f * static_cast<float>(i) / 2000000.f + 0.f;
    double want = std::exp(static_cast<double>(x));
    double rel = std::fabs(exp_fast(x) - want) / want;
    worst = std::max(worst, rel);
  }
  INFO("max relative error " << worst << " = " << worst / FLT_EPSILON << " ulp");
  CHECK(worst <= 4 * FLT_EPSILON);
  for (float x : {0.5f, 1.f, 10.f, 80.f}) CHECK(std::fabs(exp_fast(x) / std::exp(double(x)) - 1) <= 4 * FLT_EPSILON);
}

TEST_CASE("exp_fast sends masked scores to exactly zero", "[exp]") {
  CHECK(exp_fast(-std::numeric_limits<float>::infinity()) == 0.f);
  CHECK(exp_fast(-88.f) == 0.f);
  CHECK(exp_fast(-1e30f) == 0.f);
  CHECK(exp_fast(0.f) == 1.f);
}

TEST_CASE("exp_shift_sum and max_of", "[exp]") {
  std::vector<float> x(37);
  for (int i = 0; i < 37; ++i) x[i] = -0.25f * i;
  x[5] = -std::numeric_limits<float>::infinity();
  CHECK(rw::device::cpu::max_of(x.data(), 37) == 0.f);
  CHECK(rw::device::cpu::max_of(x.data(), 0) == -std::numeric_limits<float>::infinity());
  std::vector<float> y = x;
  double want = 0;
  for (int i = 0; i < 37; ++i) want += i == 5 ? 0.0 : std::exp(-0.25 * i + 1.0);
  float sum = rw::device::cpu::exp_shift_sum(y.data(), 37, -1.f);
  // 37 terms of relative error <= 4 ulp each plus fp32 summation: 37 * 6 ulp relative bound.
  CHECK(std::fabs(sum - want) <= 37 * 6 * FLT_EPSILON * want);
  CHECK(y[5] == 0.f);
  CHECK(std::fabs(y[0] - std::exp(1.0)) <= 4 * FLT_EPSILON * std::exp(1.0));
}
