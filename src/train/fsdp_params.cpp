// fsdp_params.cpp
#include "src/train/fsdp_params.h"

#include <algorithm>

#include "src/common/fatal.h"
#include "src/model/param_init.h"

namespace rw::train {

FsdpParams::FsdpParams(const model::LlamaConfig& config, mpi::ProcessGrid& grid)
    : units_(model::parameter_units(config)), grid_(grid) {
  const int64_t n = grid.size(), r = grid.rank();
  shards_.resize(units_.size());
  gathered_.resize(units_.size());
  for (std::size_t u = 0; u < units_.size(); ++u) {
    Shard& s = shards_[u];
    s.shard_count = (units_[u].count + n - 1) / n;
    s.begin = std::min(units_[u].count, r * s.shard_count);
    s.end = std::min(units_[u].count, (r + 1) * s.shard_count);
    s.weights.assign(s.shard_count, 0.f);
    s.grads.assign(s.shard_count, 0.f);
    s.adam_m.assign(s.shard_count, 0.f);
    s.adam_v.assign(s.shard_count, 0.f);
    s.decay.assign(s.shard_count, 0);
    for (int64_t i = s.begin; i < s.end; ++i) {
      std::size_t t = 0;
      while (t + 1 < units_[u].offsets.size() && i >= units_[u].offsets[t + 1]) ++t;
      s.decay[i - s.begin] = units_[u].tensors[t].is_norm ? 0 : 1;
    }
  }
}

void FsdpParams::initialize(uint64_t seed) {
  for (std::size_t u = 0; u < units_.size(); ++u) {
    Shard& s = shards_[u];
    for (int64_t i = s.begin; i < s.end; ++i)
      s.weights[i - s.begin] = model::initial_value(seed, static_cast<int>(u), units_[u], i);
  }
}

void FsdpParams::zero_grads() {
  for (Shard& s : shards_) std::fill(s.grads.begin(), s.grads.end(), 0.f);
}

const float* FsdpParams::gather(int unit) {
  Shard& s = shards_[unit];
  HostVector<float>& full = gathered_[unit];
  full.resize(static_cast<std::size_t>(s.shard_count) * grid_.size());
  grid_.allgather(s.weights.data(), s.shard_count, full.data());
  return full.data();
}

void FsdpParams::release(int unit) { HostVector<float>().swap(gathered_[unit]); }

void FsdpParams::reduce_grad(int unit, const float* grad) {
  Shard& s = shards_[unit];
  const std::size_t padded = static_cast<std::size_t>(s.shard_count) * grid_.size();
  scatter_buffer_.resize(padded);
  std::copy(grad, grad + units_[unit].count, scatter_buffer_.begin());
  std::fill(scatter_buffer_.begin() + units_[unit].count, scatter_buffer_.end(), 0.f);
  scatter_result_.resize(s.shard_count);
  grid_.reduce_scatter_sum(scatter_buffer_.data(), scatter_result_.data(), s.shard_count);
  for (int64_t i = 0; i < s.shard_count; ++i) s.grads[i] += scatter_result_[i];
  // The scatter buffer is as large as the unit: free it, the model at rest stays sharded.
  HostVector<float>().swap(scatter_buffer_);
}

int64_t FsdpParams::bytes_at_rest() const {
  int64_t n = 0;
  for (const Shard& s : shards_) n += 4 * s.shard_count * 4;
  return n;
}

}  // namespace rw::train
