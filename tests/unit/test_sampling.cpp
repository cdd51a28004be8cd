// test_sampling.cpp: the sampler (src/infer/sampling.h): greedy = argmax with ties to the lower
// id; top-k 1 = greedy at any temperature; empirical frequencies match the exact renormalised
// distribution (computed here from hand-built probabilities, not by the code under test);
// top-p keeps exactly the right set; the generator's stream is splitmix64's and depends only on
// (seed, step); bad options and non-finite logits are refused. Runs in well under a second.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "src/common/input_error.h"
#include "src/infer/sampling.h"

using namespace rw;
using infer::SamplingOptions;

namespace {

// Logits whose softmax at temperature 1 is exactly proportional to `probs` (up to float
// rounding of the log), shifted by an offset the softmax must ignore.
std::vector<float> logits_of(const std::vector<double>& probs, double offset = 3.0) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p) + offset));
  return l;
}

// Pearson's chi-square statistic of `draws` samples against the expected probabilities.
double chi_square(const std::map<int32_t, int>& counts, const std::map<int32_t, double>& expected, int draws) {
  double chi2 = 0;
  for (const auto& [id, p] : expected) {
    const auto it = counts.find(id);
    const double observed = it == counts.end() ? 0 : it->second;
    chi2 += (observed - draws * p) * (observed - draws * p) / (draws * p);
  }
  return chi2;
}

// Upper 1e-6 quantiles of the chi-square distribution with 1..5 degrees of freedom (computed
// from the regularised incomplete gamma function): a correct sampler fed ideal uniforms exceeds
// them with probability 1e-6, while a probability off by 0.01 at p = 0.25 adds ~40 at 100000
// draws, so a wrong distribution cannot hide under the bound.
double chi_square_bound(int dof) {
  static const double q[] = {0, 23.93, 27.63, 30.66, 33.38, 35.89};
  REQUIRE(dof >= 1);
  REQUIRE(dof <= 5);
  return q[dof];
}

void check_frequencies(const SamplingOptions& o, const std::vector<float>& logits,
                       const std::map<int32_t, double>& expected) {
  constexpr int kDraws = 100000;
  infer::Sampler sampler(o);
  std::map<int32_t, int> counts;
  for (int i = 0; i < kDraws; ++i) ++counts[sampler.next(logits.data(), static_cast<int64_t>(logits.size()))];
  for (const auto& [id, n] : counts) {
    INFO("token " << id << " drawn " << n << " times");
    CHECK(expected.count(id) == 1);
  }
  const double chi2 = chi_square(counts, expected, kDraws);
  INFO("chi-square " << chi2 << " over " << expected.size() << " tokens");
  CHECK(chi2 < chi_square_bound(static_cast<int>(expected.size()) - 1));
}

}  // namespace

TEST_CASE("greedy sampling is the argmax, ties to the lowest id", "[sampling]") {
  infer::Sampler greedy(SamplingOptions{});
  const std::vector<float> a = {1.f, 3.f, 3.f, 2.f, -7.f};
  CHECK(greedy.next(a.data(), 5) == 1);
  const std::vector<float> b = {0.5f, 0.5f, 0.5f};
  CHECK(greedy.next(b.data(), 3) == 0);
  const std::vector<float> c = {-1e30f, -2.f, 8.25f, 8.f, 8.25f};
  CHECK(greedy.next(c.data(), 5) == 2);
  CHECK(greedy.step() == 3);
}

TEST_CASE("top-k 1 is greedy at any temperature and seed", "[sampling]") {
  const std::vector<float> logits = {0.1f, 2.f, 1.9f, 2.f, -3.f, 1.99f};
  for (double t : {0.1, 1.0, 5.0, 100.0})
    for (uint64_t seed : {0ull, 1ull, 12345ull}) {
      infer::Sampler s(SamplingOptions{t, 1, 1.0, seed});
      for (int i = 0; i < 50; ++i) CHECK(s.next(logits.data(), 6) == 1);
    }
}

TEST_CASE("sampled frequencies match the renormalised distribution", "[sampling]") {
  const std::vector<double> p = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};
  const std::vector<float> logits = logits_of(p);
  SECTION("temperature 1: the softmax itself") {
    std::map<int32_t, double> e;
    for (int i = 0; i < 6; ++i) e[i] = p[i];
    check_frequencies(SamplingOptions{1.0, 0, 1.0, 11}, logits, e);
  }
  SECTION("temperature 0.5: p^2, renormalised") {
    double z = 0;
    for (double x : p) z += x * x;
    std::map<int32_t, double> e;
    for (int i = 0; i < 6; ++i) e[i] = p[i] * p[i] / z;
    check_frequencies(SamplingOptions{0.5, 0, 1.0, 12}, logits, e);
  }
  SECTION("top-k 3 at temperature 2: sqrt(p) of the three largest, renormalised") {
    const double z = std::sqrt(0.4) + std::sqrt(0.25) + std::sqrt(0.15);
    check_frequencies(SamplingOptions{2.0, 3, 1.0, 13}, logits,
                      {{0, std::sqrt(0.4) / z}, {1, std::sqrt(0.25) / z}, {2, std::sqrt(0.15) / z}});
  }
  SECTION("top-p 0.75: the prefix 0.4 + 0.25 + 0.15 = 0.8, renormalised") {
    check_frequencies(SamplingOptions{1.0, 0, 0.75, 14}, logits, {{0, 0.4 / 0.8}, {1, 0.25 / 0.8}, {2, 0.15 / 0.8}});
  }
}

TEST_CASE("top-p keeps the smallest prefix by probability, ties to the lower id", "[sampling]") {
  // Probabilities 0.1, 0.2, 0.5, 0.2 at ids 0..3: descending order 2 (0.5), 1 (0.2, lower id), 3 (0.2), 0.
  const std::vector<float> logits = logits_of({0.1, 0.2, 0.5, 0.2});
  const auto kept = [&](SamplingOptions o) { return infer::sampling_distribution(o, logits.data(), 4).ids; };
  CHECK(kept({1.0, 0, 0.4, 0}) == std::vector<int32_t>{2});
  // At the boundaries: 1e-5 is far above the float rounding of the logits (~1e-7 relative).
  CHECK(kept({1.0, 0, 0.5 - 1e-5, 0}) == std::vector<int32_t>{2});
  CHECK(kept({1.0, 0, 0.5 + 1e-5, 0}) == std::vector<int32_t>{2, 1});
  CHECK(kept({1.0, 0, 0.7 - 1e-5, 0}) == std::vector<int32_t>{2, 1});
  CHECK(kept({1.0, 0, 0.7 + 1e-5, 0}) == std::vector<int32_t>{2, 1, 3});
  CHECK(kept({1.0, 0, 0.6, 0}) == std::vector<int32_t>{2, 1});
  CHECK(kept({1.0, 0, 0.75, 0}) == std::vector<int32_t>{2, 1, 3});
  CHECK(kept({1.0, 0, 0.95, 0}) == std::vector<int32_t>{2, 1, 3, 0});
  CHECK(kept({1.0, 0, 1.0, 0}) == std::vector<int32_t>{2, 1, 3, 0});
  // Top-k first, then top-p over the renormalised top-k: {0.5, 0.2} -> {5/7, 2/7}; 5/7 >= 0.7
  // keeps one token (over the full distribution 0.5 < 0.7 would have kept two).
  const auto d = infer::sampling_distribution({1.0, 2, 0.7, 0}, logits.data(), 4);
  CHECK(d.ids == std::vector<int32_t>{2});
  CHECK(d.probs == std::vector<double>{1.0});
  const auto two = infer::sampling_distribution({1.0, 2, 1.0, 0}, logits.data(), 4);
  REQUIRE(two.ids == std::vector<int32_t>{2, 1});
  // Renormalised: 0.5 / 0.7 and 0.2 / 0.7, to the float rounding of the logits (~1e-7 relative).
  CHECK(two.probs[0] == Approx(5.0 / 7).epsilon(1e-6));
  CHECK(two.probs[1] == Approx(2.0 / 7).epsilon(1e-6));
}

TEST_CASE("the random stream is splitmix64's, a function of seed and step only", "[sampling]") {
  // splitmix64 from state 0: the published first outputs 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4,
  // 0x06c45d188009454f; u = (bits >> 11) * 2^-53 exactly.
  const uint64_t reference[] = {0xe220a8397b1dcdafull, 0x6e789e6aa1b965f4ull, 0x06c45d188009454full};
  for (uint64_t step = 0; step < 3; ++step)
    CHECK(infer::sampling_uniform(0, step) == std::ldexp(static_cast<double>(reference[step] >> 11), -53));
  const std::vector<float> logits = logits_of({0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05});
  const auto run = [&](uint64_t seed, uint64_t first_step, int n) {
    infer::Sampler s(SamplingOptions{0.8, 5, 0.95, seed});
    s.set_step(first_step);
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) out.push_back(s.next(logits.data(), 7));
    return out;
  };
  const auto a = run(42, 0, 200);
  CHECK(a == run(42, 0, 200));
  CHECK(a != run(43, 0, 200));
  // Continuing at step 150 gives the tail of the same stream.
  const auto tail = run(42, 150, 50);
  CHECK(std::vector<int32_t>(a.begin() + 150, a.end()) == tail);
}

TEST_CASE("bad sampling options and non-finite logits are refused", "[sampling]") {
  CHECK_THROWS_WITH(infer::Sampler(SamplingOptions{-0.1, 0, 1.0, 0}), Catch::Contains("--temperature"));
  CHECK_THROWS_WITH(infer::Sampler(SamplingOptions{std::nan(""), 0, 1.0, 0}), Catch::Contains("--temperature"));
  CHECK_THROWS_WITH(infer::Sampler(SamplingOptions{1.0, -1, 1.0, 0}), Catch::Contains("--top-k"));
  CHECK_THROWS_WITH(infer::Sampler(SamplingOptions{1.0, 0, 0.0, 0}), Catch::Contains("--top-p"));
  CHECK_THROWS_WITH(infer::Sampler(SamplingOptions{1.0, 0, 1.5, 0}), Catch::Contains("--top-p"));
  CHECK_THROWS_AS(infer::Sampler(SamplingOptions{1.0, 0, 1.5, 0}), InputError);
  for (double t : {0.0, 1.0}) {
    infer::Sampler s(SamplingOptions{t, 0, 1.0, 0});
    const std::vector<float> good = {1.f, 2.f, 3.f};
    s.next(good.data(), 3);
    s.next(good.data(), 3);
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
      const std::vector<float> logits = {1.f, bad, 3.f};
      const uint64_t step = s.step();
      try {
        s.next(logits.data(), 3);
        FAIL("no error for a non-finite logit");
      } catch (const infer::NonFiniteLogits& e) {
        CHECK(e.step == step);
        CHECK(e.token == 1);
        CHECK_THAT(e.what(), Catch::Contains("step " + std::to_string(step)) && Catch::Contains("token 1"));
      }
    }
  }
}
