// transfer_plan.cpp: see transfer_plan.h.
#include "src/plan/transfer_plan.h"

#include <algorithm>
#include <cmath>

#include "src/model/llama_config.h"

namespace rw::plan {

TransferPlan plan_transfers(const TrainShape& s, std::size_t mpi_limit, std::size_t h5_limit) {
  TransferPlan plan;
  const double b = double(s.sequences_per_group), n = double(s.local_tokens_per_sequence());
  const double kv = double(s.model.kv_width());
  const double mpi_limit_d = double(mpi_limit);
  auto split = [](double n_bytes, double limit) { return std::max(1.0, std::ceil(n_bytes / limit)); };

  if (s.sp > 1) {
    // ring_attention.cpp: K then V of the shard in hand, one message per hop; the backward's
    // dK|dV accumulator travels the same way.
    // K, V in the working precision (bf16: 2 bytes), dK|dV fp32.
    const double kv_bytes = 2 * b * n * kv * (s.bf16 ? 2 : 4), dkv_bytes = 2 * b * n * kv * 4;
    plan.items.push_back({"ring K|V payload, per hop", "MPI point-to-point", kv_bytes, mpi_limit_d, split(kv_bytes, mpi_limit_d)});
    plan.items.push_back({"ring dK|dV payload, per hop (backward)", "MPI point-to-point", dkv_bytes, mpi_limit_d,
                          split(dkv_bytes, mpi_limit_d)});
  }
  // fsdp_params.cpp: units of ceil(count / ranks) floats per rank.
  const std::vector<model::ParamUnit> units = model::parameter_units(s.model);
  const std::size_t ranks = std::size_t(s.ranks());
  int64_t largest_unit = 0;
  for (const model::ParamUnit& u : units) largest_unit = std::max(largest_unit, u.count);
  if (ranks > 1) {
    const double shard = double((largest_unit + int64_t(ranks) - 1) / int64_t(ranks));
    const double piece = double(collective_piece_elems(mpi_limit, ranks, sizeof(float)));
    const double calls = shard <= piece ? 1 : std::ceil(shard / piece);
    const double moved = double(ranks) * shard * 4;
    plan.items.push_back({"FSDP all-gather of the largest unit (all ranks' shards)", "MPI collective", moved, mpi_limit_d, calls});
    plan.items.push_back({"FSDP reduce-scatter of the largest unit (all ranks' blocks)", "MPI collective", moved, mpi_limit_d,
                          calls});
  }
  for (std::size_t i = 0; i < plan.items.size(); ++i)
    if (plan.items[i].n_bytes > plan.items[plan.largest].n_bytes) plan.largest = i;

  // params_io.cpp: a rank writes, per tensor, the part of its unit's shard inside the tensor.
  double largest_part = 0;
  for (const model::ParamUnit& u : units) {
    const double shard = double((u.count + int64_t(ranks) - 1) / int64_t(ranks));
    for (const model::TensorSpec& t : u.tensors) largest_part = std::max(largest_part, std::min(double(t.count()), shard));
  }
  const double part_bytes = 4 * largest_part, h5_limit_d = double(h5_limit);
  plan.items.push_back({"checkpoint: a rank's part of one tensor (per array: weights, m, v)", "HDF5 (MPI-IO)", part_bytes,
                        h5_limit_d, split(part_bytes, h5_limit_d)});
  return plan;
}

}  // namespace rw::plan
