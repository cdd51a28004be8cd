// param_init.h: the initial value of every parameter element as a function of (seed, unit,
// element index within the unit) only, so any process grid initialises identical weights.
// Projections and embeddings: normal(0, 0.02) (Hugging Face's initializer_range); norms: 1.
#pragma once
#include <cmath>
#include <cstdint>

#include "src/model/llama_config.h"

namespace rw::model {

inline double hashed_unit_interval(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull ^ (stream + 1) * 0xd1b54a32d192ed03ull;
  z += index * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return ((z >> 11) + 0.5) * (1.0 / 9007199254740992.0);  // (0, 1)
}

constexpr double kInitStd = 0.02;

// Value of element `index` of unit `unit` (layout of parameter_units()).
inline float initial_value(uint64_t seed, int unit, const ParamUnit& spec, int64_t index) {
  std::size_t t = 0;
  while (t + 1 < spec.offsets.size() && index >= spec.offsets[t + 1]) ++t;
  if (spec.tensors[t].is_norm) return 1.f;
  // Box-Muller on two hashed uniforms.
  const double u1 = hashed_unit_interval(seed, 2 * unit, index), u2 = hashed_unit_interval(seed, 2 * unit + 1, index);
  return static_cast<float>(kInitStd * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace rw::model
