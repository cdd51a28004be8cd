// grad_norm.cpp: see grad_norm.h.
#include "src/train/grad_norm.h"

#include <cmath>

#include "src/train/fsdp_params.h"

namespace rw::train {

double global_grad_norm(FsdpParams& params) {
  return std::sqrt(params.grid().allreduce_sum(params.local_grad_sum_squares()));
}

}  // namespace rw::train
