// ring_attention.h: exact Blockwise RingAttention, forward and backward, over a RingTransport
// (mpi/ring_transport.h) and a device::Backend. Each rank holds its shard of queries, keys and
// values in ring layout (see layout.h); K, V (only the kv heads) and their positions/segments
// travel round the ring in double buffers, the next shard posted before the current one is
// computed.
//
// Forward, step t = 0..n-1: the shard of rank (r - t) mod n meets the local queries; its
// partial (O, lse) is merged into the running result. The last step sends nothing.
// Backward: dQ accumulates locally; K, V travel again, and each shard's dK, dV accumulator
// (fp32) travels one step behind it, so after n hops it is home summed over every query.
//
// Device work and transfers are ordered by events, never by a host-side synchronize (device/
// exec_context.h is the contract): kernels go on the context's compute stream; every device
// send is posted (mpi/device_ring.h) with the event recorded behind the kernel or copy that
// produced its buffer, every device receive with the event recorded behind the last kernel that
// read the buffer it overwrites, and the compute stream waits for a received buffer's landing
// before the kernel that reads it. In the backward that covers the two hazards of a plain
// "kernels run at submission" schedule: the dK/dV accumulator is sent only after the add that
// completes it (event dkv_ready), and the next receive into dkv_in waits for that add to have
// read it (event dkv_in_free). Test hook: RINGWORLD_TEST_SKIP_EVENT (or RingOptions::
// test_skip_event) = ring_kv_send | ring_dkv_send removes one of these ordering points, so a
// sim-gpu test can show the failure it guards against.
//
// Workspace: the travelling double buffers, the dK/dV accumulators and delta are allocated on
// first use and kept (grown only when a larger shard comes), so a training run allocates them
// once; so do the transfer path's pinned staging buffers.
//
// Every message is preceded by a header (kind, step, layer, origin rank, shapes, bytes) that the
// receiver checks, so a mismatched exchange is a clear error, never silently wrong numbers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/exec_context.h"
#include "mpi/device_ring.h"
#include "mpi/ring_transport.h"
#include "src/attention/ring_message.h"

namespace rw {

// This rank's inputs, device pointers, shapes as in device/attention_args.h with n_q = n_k =
// n_local. pos/seg: int32 [batch, n_local] global positions and segment ids.
struct RingShard {
  int batch = 0;
  int n_local = 0;
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const int32_t* pos = nullptr;
  const int32_t* seg = nullptr;
  // Storage of q, k, v (and of dout in the backward): f32, or bf16 (the pointers then hold bf16
  // data); K and V travel the ring in it. out, lse, dq, dk, dv and the dK/dV that travel are fp32.
  device::DType dtype = device::DType::f32;
};

struct RingOptions {
  bool causal = false;
  device::AttnTiling tiling;
  int layer = 0;  // recorded in message headers (and hang reports)
  // How device buffers reach MPI (mpi/transfer_path.h): automatic follows the backend and
  // RINGWORLD_GPU_AWARE_MPI; tests and benchmarks may fix it.
  mpi::PathChoice transfer_path = mpi::PathChoice::automatic;
  // Whether the host waits for each step's kernel (an event, with progress) so that
  // RingStepStats::compute_s is the kernel's time on asynchronous backends too. Off, the host
  // runs ahead and compute_s is only the time to enqueue (on cpu kernels run at submission, so
  // compute_s is exact either way). Benchmarks turn it on.
  bool wait_each_step = false;
  // Test hook (see above); "" reads RINGWORLD_TEST_SKIP_EVENT.
  std::string test_skip_event;
};

struct RingStepStats {
  int step = 0;
  double compute_s = 0;     // kernel submission to completion (see RingOptions::wait_each_step)
  double wait_s = 0;        // exposed communication: waiting for the step's transfers after compute
  std::size_t bytes_sent = 0;
};

class RingAttention {
 public:
  RingAttention(device::ExecContext context, mpi::RingTransport& transport, RingOptions options);
  // On the backend's default stream.
  RingAttention(device::Backend& backend, mpi::RingTransport& transport, RingOptions options);
  ~RingAttention();

  // out [batch, n_local, heads, head_dim], lse [batch, heads, n_local] (device pointers).
  void forward(const RingShard& shard, float* out, float* lse);

  // dq like q; dk, dv like k, v (device pointers, overwritten).
  void backward(const RingShard& shard, const float* out, const float* dout, const float* lse,
                float* dq, float* dk, float* dv);

  const std::vector<RingStepStats>& last_stats() const { return stats_; }
  void set_layer(int layer) { options_.layer = layer; }
  mpi::TransferPath transfer_path() const { return ring_.path(); }
  // The K/V channel and the dK/dV channel (each its own copy stream and staging buffers, so
  // neither waits behind the other's copies).
  mpi::DeviceRing& device_ring() { return ring_; }
  mpi::DeviceRing& dkv_ring() { return dkv_ring_; }
  // Device bytes of the kept workspace (tests: it stops growing after the first call).
  std::size_t workspace_bytes() const;

 private:
  struct Workspace;
  void prepare(const RingShard& shard);
  void stage_local_shard(const RingShard& s);
  static void progress_both(void* self);
  device::ProgressHook hook() { return {&RingAttention::progress_both, this}; }

  device::ExecContext ctx_;
  mpi::RingTransport& transport_;
  mpi::DeviceRing ring_, dkv_ring_;
  RingOptions options_;
  std::unique_ptr<Workspace> ws_;
  std::vector<RingStepStats> stats_;
};

}  // namespace rw
