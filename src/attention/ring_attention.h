// ring_attention.h: exact Blockwise RingAttention, forward and backward, over a RingTransport
// and a device::Backend. Each rank holds its shard of queries, keys and values in ring layout
// (see layout.h); K, V (only the kv heads) and their positions/segments travel round the ring
// in double buffers, the next shard posted before the current one is computed.
//
// Forward, step t = 0..n-1: the shard of rank (r - t) mod n meets the local queries; its
// partial (O, lse) is merged into the running result. The last step sends nothing.
// Backward: dQ accumulates locally; K, V travel again, and each shard's dK, dV accumulator
// (fp32) travels one step behind it, so after n hops it is home summed over every query.
//
// Every message is preceded by a header (kind, step, layer, origin rank, shapes, bytes) that the
// receiver checks, so a mismatched exchange is a clear error, never silently wrong numbers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "device/backend.h"
#include "src/attention/ring_transport.h"

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
};

struct RingOptions {
  bool causal = false;
  device::AttnTiling tiling;
  int layer = 0;  // recorded in message headers (and hang reports)
};

struct RingStepStats {
  int step = 0;
  double compute_s = 0;     // kernel submission to completion
  double wait_s = 0;        // exposed communication: waiting after compute was done
  std::size_t bytes_sent = 0;
};

class RingAttention {
 public:
  RingAttention(device::Backend& backend, RingTransport& transport, RingOptions options);

  // out [batch, n_local, heads, head_dim], lse [batch, heads, n_local] (device pointers).
  void forward(const RingShard& shard, float* out, float* lse);

  // dq like q; dk, dv like k, v (device pointers, overwritten).
  void backward(const RingShard& shard, const float* out, const float* dout, const float* lse,
                float* dq, float* dk, float* dv);

  const std::vector<RingStepStats>& last_stats() const { return stats_; }

 private:
  device::Backend& backend_;
  RingTransport& transport_;
  RingOptions options_;
  std::vector<RingStepStats> stats_;
};

}  // namespace rw
