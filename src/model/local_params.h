// local_params.h: whole, unsharded parameters and gradients in one process: the reference the
// sharded training is compared with, and the fp64 model of the finite-difference tests.
#pragma once
#include <vector>

#include "src/model/llama_config.h"
#include "src/model/model_interfaces.h"
#include "src/model/param_init.h"

namespace rw::model {

template <class T>
class LocalParams : public ParamSource<T> {
 public:
  LocalParams(const LlamaConfig& config, uint64_t seed) : units_(parameter_units(config)) {
    for (std::size_t u = 0; u < units_.size(); ++u) {
      weights.emplace_back(units_[u].count);
      grads.emplace_back(units_[u].count, T(0));
      for (int64_t i = 0; i < units_[u].count; ++i)
        weights[u][i] = static_cast<T>(initial_value(seed, static_cast<int>(u), units_[u], i));
    }
  }
  const T* gather(int unit) override { return weights[unit].data(); }
  void release(int) override {}
  void reduce_grad(int unit, const T* grad) override {
    for (std::size_t i = 0; i < grads[unit].size(); ++i) grads[unit][i] += grad[i];
  }
  void zero_grads() {
    for (auto& g : grads) std::fill(g.begin(), g.end(), T(0));
  }
  const std::vector<ParamUnit>& units() const { return units_; }

  std::vector<std::vector<T>> weights, grads;

 private:
  std::vector<ParamUnit> units_;
};

}  // namespace rw::model
