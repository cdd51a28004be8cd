// fsdp_params.h: parameters, gradients and AdamW moments sharded over every rank of the grid
// (FSDP / ZeRO-3), in device memory. Each parameter unit (llama_config.h) is a flat array of
// `count` elements, padded to size * shard_count; rank r owns elements [r * shard_count,
// (r + 1) * shard_count). A unit is all-gathered into a kept gather buffer before use and its
// gradient reduce-scattered to the owners. At rest a rank holds only its shards.
//
// Asynchrony (device/exec_context.h is the contract; llm.c's zero.cuh is the model):
//   - gather(u) returns a device pointer that compute-stream work enqueued afterwards may read
//     (the compute stream waits for the gather's landing event); prefetch(u) starts that
//     all-gather early, so unit u+1's gather is in flight while unit u computes. The all-gathers
//     run through mpi/device_transfers.h on their own communicator: directly on device memory,
//     or staged through pinned host buffers on a copy stream (mpi/transfer_path.h).
//   - A gather buffer is rewritten only after the event recorded at release(u) (behind the
//     last kernels that read it); a released unit stays cached in its buffer until the buffer is
//     needed, so gathering it again (the backward's first layer) moves nothing.
//   - reduce_grad(u, grad) copies grad into a kept scatter buffer on the compute stream (the
//     caller may reuse grad afterwards) and posts the reduce-scatter behind that copy's event,
//     on a second communicator, so it overlaps the rest of the backward; the shard's grads are
//     summed in (a kernel on the compute stream) when finish_grad_reductions() runs, which
//     everything that reads grads calls first (global_grad_norm, zero_grads, non-const
//     shards(), checkpoint staging).
//   - Buffers are allocated once (the first step) and kept; so are the pinned staging buffers.
//   - Writing the shards: through non-const shards(), which first completes every transfer
//     in flight and marks the weights changed, so the next all-gather waits for the kernels
//     enqueued after that call (the optimizer's). Call it again before each update.
// bf16 working copy (FsdpOptions::gather_dtype = bf16, the model's --precision bf16): each weight
// shard has a bf16 copy, refreshed by a convert kernel on the compute stream the first time the
// weights are gathered after they changed (the optimizer step, initialize, a checkpoint load),
// and the all-gather moves that copy: half the bytes, the gather buffers half full. gather_bf16()
// returns it; gather() (fp32) is refused then. The master weights, moments, gradients and their
// reduce-scatter stay fp32; checkpoints read and write the fp32 shards as always.
// Every rank calls gather/prefetch/release/reduce_grad in the same order (they post
// collectives). Waits record what they wait for (the watchdog's report).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "device/backend.h"
#include "device/exec_context.h"
#include "io/sharded_tensors.h"
#include "mpi/async_collectives.h"
#include "mpi/device_transfers.h"
#include "mpi/process_grid.h"
#include "mpi/transfer_path.h"
#include "src/common/host_buffer.h"
#include "src/model/llama_config.h"
#include "src/model/model_interfaces.h"
#include "src/model/precision.h"

namespace rw::train {

struct FsdpOptions {
  mpi::PathChoice transfer_path = mpi::PathChoice::automatic;
  // Kept gather buffers (each the largest padded unit): the unit in use and the one
  // prefetched. gather() adds one when the caller holds more units at once; prefetch never does
  // (it does nothing when no buffer is free).
  int gather_buffers = 2;
  // Reduce-scatters in flight at once (each a padded unit and a shard); one more waits for the
  // oldest.
  int scatter_buffers = 2;
  // What gather() hands out: f32 (the master weights) or bf16 (the refreshed bf16 copy, through
  // gather_bf16(): see above).
  device::DType gather_dtype = device::DType::f32;
};

// The FSDP options a model of this precision wants: bf16 gathers the bf16 working copy.
inline FsdpOptions fsdp_options_for(model::Precision precision, FsdpOptions options = {}) {
  options.gather_dtype = model::working_dtype(precision);
  return options;
}

class FsdpParams : public model::ParamSource<float>, public io::ShardedTensors {
 public:
  // Shards on `context`'s backend; no backend: a cpu backend of its own (tools that only read
  // and write parameter files).
  FsdpParams(const model::LlamaConfig& config, mpi::ProcessGrid& grid, device::ExecContext context = {},
             FsdpOptions options = {});
  ~FsdpParams() override;

  void initialize(uint64_t seed);  // the same values on any grid (param_init.h)
  void zero_grads();

  const float* gather(int unit) override;
  bool gathers_bf16() const override { return options_.gather_dtype == device::DType::bf16; }
  const device::bf16_t* gather_bf16(int unit) override;
  void prefetch(int unit) override;
  void release(int unit) override;
  void reduce_grad(int unit, const float* grad) override;
  // Completes every reduce-scatter in flight and sums it into the grads (compute stream).
  void finish_grad_reductions();
  // Lets the transfers in flight advance (never blocks): between kernels that run on the host
  // thread (cpu), or as the progress hook while the host waits for device work.
  void progress();
  device::ProgressHook progress_hook() { return {&FsdpParams::progress_trampoline, this}; }
  // Sum of squares of this rank's owned gradient elements, in shard order, in fp64 (a kernel
  // into a kept device scalar, then 8 bytes to the host); grad_norm.h sums it over the grid.
  double local_grad_sum_squares();

  struct Shard {
    int64_t begin = 0, end = 0;  // element range of the unit owned here (end <= unit count)
    int64_t shard_count = 0;     // padded shard length (same on every rank)
    // Device memory, shard_count long; padding stays 0.
    device::DeviceArray<float> weights, grads, adam_m, adam_v;
    device::DeviceArray<uint8_t> decay;  // 1 where weight decay applies (not norms)
    device::DeviceArray<device::bf16_t> weights_bf16;  // the bf16 working copy (bf16 gathers only)
  };
  // Non-const: completes transfers in flight and marks the weights changed (see above).
  std::vector<Shard>& shards();
  const std::vector<Shard>& shards() const { return shards_; }
  const std::vector<model::ParamUnit>& units() const { return units_; }
  mpi::ProcessGrid& grid() override { return grid_; }
  device::ExecContext context() const { return ctx_; }
  device::Backend& backend() { return *ctx_.backend; }
  mpi::TransferPath transfer_path() const { return gathers_->path(); }
  int64_t bytes_at_rest() const;  // weights, grads, moments (and the bf16 copy) held by this rank

  // Host copies of one field of one unit's shard (shard_count floats; synchronous).
  void download_shard(int unit, io::ShardField field, float* host);
  void upload_shard(int unit, io::ShardField field, const float* host);

  // io::ShardedTensors: the parameter tensors with this rank's ranges, staged through host.
  std::vector<io::TensorPart> tensor_parts() const override;
  std::vector<const float*> stage_out(io::ShardField field) override;
  std::vector<float*> stage_in(io::ShardField field) override;
  void commit_in(io::ShardField field) override;
  void end_staging() override;

  // What the communication cost the host (for step logs and the benchmarks).
  struct Stats {
    int64_t gathers = 0;             // gather() calls
    int64_t gathers_cached = 0;      // served from a released buffer (nothing moved)
    int64_t gathers_prefetched = 0;  // whose all-gather had been started by prefetch()
    double gather_wait_s = 0;        // host time in gather() waiting for all-gathers to land
    int64_t reductions = 0;
    double reduce_wait_s = 0;        // host time waiting for reduce-scatters (buffer reuse, finish)
    int64_t collective_calls = 0;    // MPI calls posted by both communicators
  };
  Stats stats() const;
  void reset_stats();
  // Device bytes of the kept gather and scatter buffers (they stop growing after a step).
  std::size_t workspace_bytes() const;

 private:
  struct GatherBuffer;
  struct ScatterBuffer;
  static void progress_trampoline(void* self) { static_cast<FsdpParams*>(self)->progress(); }
  device::Event& weights_ready();
  void* gather_any(int unit);  // gather / gather_bf16: the buffer in the gather dtype
  GatherBuffer* find_gathered(int unit);
  GatherBuffer* free_gather_buffer(bool may_grow);
  void start_gather(GatherBuffer& g, int unit);
  void complete_gathers();
  void finish_reduction(ScatterBuffer& s);
  device::DeviceArray<float>& field_of(Shard& s, io::ShardField field);

  std::vector<model::ParamUnit> units_;
  mpi::ProcessGrid& grid_;
  std::unique_ptr<device::Backend> own_backend_;
  device::ExecContext ctx_;
  FsdpOptions options_;
  std::vector<Shard> shards_;
  int64_t max_padded_ = 0, max_shard_ = 0;
  std::unique_ptr<mpi::AsyncCollectives> gather_comm_, reduce_comm_;
  std::unique_ptr<mpi::DeviceTransfers> gathers_, reductions_;
  std::vector<std::unique_ptr<GatherBuffer>> gather_buffers_;
  std::vector<std::unique_ptr<ScatterBuffer>> scatter_buffers_;
  std::unique_ptr<device::Event> weights_ready_;
  device::DeviceArray<double> sum_scratch_;  // local_grad_sum_squares' fp64 accumulator
  bool weights_changed_ = true;
  int64_t use_clock_ = 0;  // orders released buffers for eviction (least recently released first)
  std::vector<HostVector<float>> staging_;  // host copies of one field (checkpoint I/O)
  Stats stats_;
};

}  // namespace rw::train
