// mma_check.h: the checks of an mma_test.h result (Catch2), shared by the emulated and the GPU tests.
#pragma once
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <vector>

#include "tests/gpu/mma_test.h"

namespace rw::test::mma {

// Whether the accessor map covers every element of a rows x cols tile exactly once.
inline bool covers_tile_once(std::vector<int> map, int rows, int cols) {
  std::sort(map.begin(), map.end());
  std::vector<int> all(static_cast<std::size_t>(rows) * cols);
  std::iota(all.begin(), all.end(), 0);
  return map == all;
}

// max |D - (C + A B)| / tolerance over the tile. Tolerance basis: products of bf16 values are
// exact in fp32; the sum of 64 products onto C is off by at most gamma_(64+1) (|C| + sum |a b|),
// doubled because a tensor core's fp32 accumulation may truncate rather than round (unit
// roundoff 2u) and its summation order is the hardware's.
inline double worst_error_ratio(const Result& r) {
  const int k_total = 64;
  double worst = 0;
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < r.n; ++j) {
      double gold = r.c[i * r.n + j], magnitude = std::fabs(r.c[i * r.n + j]);
      for (int k = 0; k < k_total; ++k) {
        const double term = double(r.a[i * k_total + k]) * double(r.b[k * r.n + j]);
        gold += term;
        magnitude += std::fabs(term);
      }
      const double tolerance = 2.0 * (k_total + 1) * std::ldexp(1.0, -24) * magnitude;
      const double err = std::fabs(double(r.d[i * r.n + j]) - gold);
      worst = std::isnan(err) ? INFINITY : std::max(worst, err / tolerance);
    }
  return worst;
}

inline void check(const Result& r, int expected_warp_size) {
  REQUIRE(r.warp_size == expected_warp_size);
  REQUIRE(r.n == (expected_warp_size == 32 ? 8 : 16));
  CHECK(covers_tile_once(r.map_a, 16, 16));
  CHECK(covers_tile_once(r.map_b, 16, r.n));
  CHECK(covers_tile_once(r.map_c, 16, r.n));
  CHECK(worst_error_ratio(r) <= 1.0);
}

}  // namespace rw::test::mma
