// fsdp_params.h: parameters, gradients and AdamW moments sharded over every rank of the grid
// (FSDP / ZeRO-3). Each parameter unit (llama_config.h) is a flat array of `count` elements,
// padded to size * shard_count; rank r owns elements [r * shard_count, (r + 1) * shard_count).
// A unit is all-gathered just before use and freed on release; gradients are reduce-scattered
// to their owners. At rest a rank holds only its shards.
#pragma once
#include <cstdint>
#include <vector>

#include "mpi/process_grid.h"
#include "src/common/host_buffer.h"
#include "src/model/llama_config.h"
#include "src/model/model_interfaces.h"

namespace rw::train {

class FsdpParams : public model::ParamSource<float> {
 public:
  FsdpParams(const model::LlamaConfig& config, mpi::ProcessGrid& grid);

  void initialize(uint64_t seed);  // the same values on any grid (param_init.h)
  void zero_grads();

  const float* gather(int unit) override;
  void release(int unit) override;
  void reduce_grad(int unit, const float* grad) override;

  struct Shard {
    int64_t begin = 0, end = 0;  // element range of the unit owned here (end <= unit count)
    int64_t shard_count = 0;     // padded shard length (same on every rank)
    HostVector<float> weights, grads, adam_m, adam_v;  // shard_count long; padding stays 0
    std::vector<uint8_t> decay;  // 1 where weight decay applies (not norms), per owned element
  };
  std::vector<Shard>& shards() { return shards_; }
  const std::vector<Shard>& shards() const { return shards_; }
  const std::vector<model::ParamUnit>& units() const { return units_; }
  mpi::ProcessGrid& grid() { return grid_; }
  int64_t bytes_at_rest() const;  // weights, grads and moments held by this rank

 private:
  std::vector<model::ParamUnit> units_;
  mpi::ProcessGrid& grid_;
  std::vector<Shard> shards_;
  std::vector<HostVector<float>> gathered_;  // per unit, empty unless gathered
  HostVector<float> scatter_buffer_;
  HostVector<float> scatter_result_;
};

}  // namespace rw::train
