// grad_norm.h: the global gradient norm of FSDP shards on the device: a sum_squares kernel over
// each shard's owned elements into one fp64 device scalar, in shard order (the same additions in
// the same order as the host loop it replaces, so bit-identical), one 8-byte copy to the host,
// one allreduce over the grid. Completes the reduce-scatters in flight first.
#pragma once

namespace rw::train {

class FsdpParams;

double global_grad_norm(FsdpParams& params);

}  // namespace rw::train
