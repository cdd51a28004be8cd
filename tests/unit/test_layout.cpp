// test_layout.cpp: ring layouts are permutations with the documented ownership, and
// indivisible lengths are refused with a message naming the numbers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "src/attention/layout.h"
#include "src/common/input_error.h"

using namespace rw;

TEST_CASE("every layout partitions the sequence", "[layout]") {
  for (Layout layout : {Layout::contiguous, Layout::striped, Layout::zigzag})
    for (int n = 1; n <= 5; ++n) {
      const int64_t seq = 2 * n * 6;
      std::vector<int64_t> all;
      for (int r = 0; r < n; ++r) {
        auto idx = local_token_indices(layout, seq, n, r);
        REQUIRE(static_cast<int64_t>(idx.size()) == seq / n);
        CHECK(std::is_sorted(idx.begin(), idx.end()));  // io relies on ascending order
        all.insert(all.end(), idx.begin(), idx.end());
      }
      std::sort(all.begin(), all.end());
      for (int64_t i = 0; i < seq; ++i) REQUIRE(all[i] == i);
    }
}

TEST_CASE("layouts own the documented tokens", "[layout]") {
  // 4 ranks, 16 tokens: zigzag chunks of 2, rank 1 owns chunks 1 and 6.
  CHECK(local_token_indices(Layout::zigzag, 16, 4, 1) == std::vector<int64_t>{2, 3, 12, 13});
  CHECK(local_token_indices(Layout::striped, 16, 4, 1) == std::vector<int64_t>{1, 5, 9, 13});
  CHECK(local_token_indices(Layout::contiguous, 16, 4, 1) == std::vector<int64_t>{4, 5, 6, 7});
  CHECK(local_token_indices(Layout::zigzag, 8, 1, 0) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("indivisible sequence lengths are refused clearly", "[layout]") {
  CHECK_THROWS_WITH(check_ring_split(Layout::contiguous, 10, 4), Catch::Contains("10") && Catch::Contains("4"));
  CHECK_THROWS_WITH(check_ring_split(Layout::zigzag, 12, 4), Catch::Contains("2 x ring size"));
  CHECK_NOTHROW(check_ring_split(Layout::zigzag, 16, 4));
  CHECK_NOTHROW(check_ring_split(Layout::striped, 12, 4));
  CHECK_THROWS_AS(parse_layout("diagonal"), InputError);
  CHECK(parse_layout("zigzag") == Layout::zigzag);
}
