// sampling.h: the next token from a row of logits, identically on every machine and rank.
// Greedy (temperature 0, the default) is the argmax, ties to the lowest id. Otherwise the
// distribution is softmax(logits / T) in double; top-k keeps the k most probable tokens (ties to
// the lower id), then top-p keeps the smallest prefix of those, by descending probability (ties
// to the lower id), whose mass, renormalised over the top-k set, is >= top_p (Hugging Face's
// order: top-k first, then top-p on what is left); the kept tokens are renormalised and one is
// drawn by inverting their cumulative distribution (in that order) at a uniform u in [0, 1).
// u comes from a counter-based generator: a function of (seed, step) only (splitmix64's
// finaliser, u = (bits >> 11) * 2^-53), with no implementation-defined distribution in between,
// so the same seed gives the same tokens with any compiler, library or ring size. The step
// counter advances on every call, greedy or not.
// Logits holding NaN or +-inf mean the model's numbers broke: next() throws NonFiniteLogits
// naming the step and the token id instead of sampling from garbage.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace rw::infer {

struct SamplingOptions {
  double temperature = 0;  // 0 = greedy
  int top_k = 0;           // 0 = off
  double top_p = 1.0;      // 1 = off
  uint64_t seed = 0;
};

// Throws InputError naming the option when temperature < 0 (or not finite), top_k < 0, or
// top_p is not in (0, 1].
void validate_sampling_options(const SamplingOptions& options);

struct NonFiniteLogits : std::runtime_error {
  NonFiniteLogits(uint64_t step, int64_t token, const std::string& what)
      : std::runtime_error(what), step(step), token(token) {}
  uint64_t step;
  int64_t token;
};

// The uniform in [0, 1) that a sampler seeded `seed` draws at step `step`.
double sampling_uniform(uint64_t seed, uint64_t step);

// The kept tokens and their renormalised probabilities (sum 1), most probable first (ties to
// the lower id), for temperature > 0: the distribution next() draws from. Greedy options give
// the argmax with probability 1. Throws NonFiniteLogits (with `step`) for NaN/inf logits.
struct TokenDistribution {
  std::vector<int32_t> ids;
  std::vector<double> probs;
};
TokenDistribution sampling_distribution(const SamplingOptions& options, const float* logits, int64_t vocab,
                                        uint64_t step = 0);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);  // validates (InputError)
  // The token for this step's logits[0 .. vocab); advances the step counter.
  int32_t next(const float* logits, int64_t vocab);
  uint64_t step() const { return step_; }
  void set_step(uint64_t step) { step_ = step; }  // e.g. to continue a stream
  const SamplingOptions& options() const { return options_; }

 private:
  SamplingOptions options_;
  uint64_t step_ = 0;
};

}  // namespace rw::infer
