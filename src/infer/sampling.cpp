// sampling.cpp
#include "src/infer/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "src/common/input_error.h"

namespace rw::infer {
namespace {

[[noreturn]] void throw_non_finite(uint64_t step, int64_t token, float value) {
  throw NonFiniteLogits(step, token,
                        "generation step " + std::to_string(step) + ": the model's logit for token " +
                            std::to_string(token) + " is " + (std::isnan(value) ? "NaN" : "infinite") +
                            " (the model's numbers broke down; nothing was sampled)");
}

void check_finite(const float* logits, int64_t vocab, uint64_t step) {
  for (int64_t i = 0; i < vocab; ++i)
    if (!std::isfinite(logits[i])) throw_non_finite(step, i, logits[i]);
}

int32_t argmax(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;  // strict: ties stay with the lower id
  return static_cast<int32_t>(best);
}

bool greedy(const SamplingOptions& o) { return o.temperature == 0 || o.top_k == 1; }

}  // namespace

void validate_sampling_options(const SamplingOptions& o) {
  if (!(std::isfinite(o.temperature) && o.temperature >= 0))
    throw InputError("--temperature must be a finite number >= 0 (0 = greedy), got " + std::to_string(o.temperature));
  if (o.top_k < 0) throw InputError("--top-k must be >= 0 (0 = off), got " + std::to_string(o.top_k));
  if (!(o.top_p > 0 && o.top_p <= 1))
    throw InputError("--top-p must be in (0, 1] (1 = off), got " + std::to_string(o.top_p));
}

double sampling_uniform(uint64_t seed, uint64_t step) {
  // splitmix64: the state after step + 1 increments of the golden-ratio gamma, finalised. A
  // bijection of the state, so distinct (seed, step) pairs on one seed's stream never repeat.
  uint64_t z = seed + (step + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);  // 53 bits: exact, in [0, 1)
}

TokenDistribution sampling_distribution(const SamplingOptions& o, const float* logits, int64_t vocab, uint64_t step) {
  validate_sampling_options(o);
  if (vocab < 1) throw InputError("sampling: the vocabulary is empty");
  check_finite(logits, vocab, step);
  TokenDistribution d;
  if (greedy(o)) {
    d.ids = {argmax(logits, vocab)};
    d.probs = {1.0};
    return d;
  }
  // Probabilities up to a common factor: exp((l - max) / T) in double, in (0, 1], the largest 1.
  const float max_logit = *std::max_element(logits, logits + vocab);
  std::vector<double> p(static_cast<std::size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) p[i] = std::exp((static_cast<double>(logits[i]) - max_logit) / o.temperature);
  std::vector<int32_t> order(static_cast<std::size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  const auto before = [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); };
  const int64_t k = o.top_k > 0 ? std::min<int64_t>(o.top_k, vocab) : vocab;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
  order.resize(static_cast<std::size_t>(k));
  double kept_mass = 0;
  for (int32_t id : order) kept_mass += p[id];
  std::size_t n = order.size();
  if (o.top_p < 1) {
    double cumulative = 0;
    for (std::size_t i = 0; i < order.size(); ++i) {
      cumulative += p[order[i]];
      if (cumulative >= o.top_p * kept_mass) {
        n = i + 1;
        break;
      }
    }
  }
  double mass = 0;
  for (std::size_t i = 0; i < n; ++i) mass += p[order[i]];
  d.ids.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n));
  d.probs.resize(n);
  for (std::size_t i = 0; i < n; ++i) d.probs[i] = p[order[i]] / mass;
  return d;
}

Sampler::Sampler(const SamplingOptions& options) : options_(options) { validate_sampling_options(options_); }

int32_t Sampler::next(const float* logits, int64_t vocab) {
  const uint64_t step = step_++;
  if (greedy(options_)) {
    if (vocab < 1) throw InputError("sampling: the vocabulary is empty");
    check_finite(logits, vocab, step);
    return argmax(logits, vocab);
  }
  const TokenDistribution d = sampling_distribution(options_, logits, vocab, step);
  // Inverse CDF over the kept tokens in their order; the last token with mass catches a u that
  // rounding leaves past the final cumulative sum.
  const double u = sampling_uniform(options_.seed, step);
  double cumulative = 0;
  std::size_t last = 0;
  for (std::size_t i = 0; i < d.ids.size(); ++i) {
    if (d.probs[i] <= 0) continue;
    cumulative += d.probs[i];
    last = i;
    if (u < cumulative) return d.ids[i];
  }
  return d.ids[last];
}

}  // namespace rw::infer
