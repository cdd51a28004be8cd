// ring_attention.cpp: the forward and backward ring schedules (see ring_attention.h).
#include "src/attention/ring_attention.h"

#include <cmath>
#include <limits>
#include <utility>

#include "device/attention_builder.h"
#include "src/attention/ring_message.h"
#include "src/common/activity.h"
#include "src/common/fatal.h"
#include "src/common/timer.h"

namespace rw {
namespace {

// Message tags: a header and a payload per channel. Messages on one tag between one pair of
// ranks arrive in posting order, which is what matches step t's send with step t's receive.
constexpr int kTagKvHeader = 101, kTagKvPayload = 102, kTagDkvHeader = 103, kTagDkvPayload = 104;

// One travelling shard: K, V, positions, segments packed in one device buffer.
struct ShardBuffer {
  device::DeviceArray<float> values;   // K then V
  device::DeviceArray<int32_t> meta;   // pos then seg
  RingHeader header;                   // host copy: sent before / received before the payload
};

struct Sizes {
  std::size_t kv_elems;    // one of K or V
  std::size_t tok_elems;   // one of pos or seg
};

Sizes sizes_of(const RingShard& s) {
  return {static_cast<std::size_t>(s.batch) * s.n_local * s.kv_heads * s.head_dim,
          static_cast<std::size_t>(s.batch) * s.n_local};
}

void check_shard(const RingShard& s) {
  RW_CHECK(s.batch > 0 && s.n_local > 0 && s.head_dim > 0 && s.kv_heads > 0 && s.heads > 0,
           "empty or malformed ring shard");
  RW_CHECK(s.heads % s.kv_heads == 0, "heads must be a multiple of kv_heads");
}

RingHeader make_header(RingPayload kind, int step, int layer, int origin, const RingShard& s,
                       std::size_t n_bytes) {
  RingHeader h;
  h.kind = static_cast<int32_t>(kind);
  h.step = step;
  h.layer = layer;
  h.origin_rank = origin;
  h.batch = s.batch;
  h.n_tokens = s.n_local;
  h.kv_heads = s.kv_heads;
  h.head_dim = s.head_dim;
  h.n_bytes = static_cast<int64_t>(n_bytes);
  return h;
}

int mod(int a, int n) { return ((a % n) + n) % n; }

// Posted transfers of one shard (header, values, meta) in one direction.
struct ShardTransfer {
  RingTransport::Request header = RingTransport::kNoRequest;
  RingTransport::Request values = RingTransport::kNoRequest;
  RingTransport::Request meta = RingTransport::kNoRequest;
};

class Exchanger {
 public:
  explicit Exchanger(RingTransport& t) : t_(t) {}

  // Sends a whole shard (K, V, pos, seg) to the next rank; returns bytes posted.
  std::size_t send_shard(ShardBuffer& buf, ShardTransfer& xfer) {
    xfer.header = t_.post_send_next(&buf.header, sizeof(RingHeader), kTagKvHeader);
    xfer.values = t_.post_send_next(buf.values.data(), buf.values.n_bytes(), kTagKvPayload);
    xfer.meta = t_.post_send_next(buf.meta.data(), buf.meta.n_bytes(), kTagKvPayload);
    return sizeof(RingHeader) + buf.values.n_bytes() + buf.meta.n_bytes();
  }
  void recv_shard(ShardBuffer& buf, ShardTransfer& xfer) {
    xfer.header = t_.post_recv_prev(&buf.header, sizeof(RingHeader), kTagKvHeader);
    xfer.values = t_.post_recv_prev(buf.values.data(), buf.values.n_bytes(), kTagKvPayload);
    xfer.meta = t_.post_recv_prev(buf.meta.data(), buf.meta.n_bytes(), kTagKvPayload);
  }
  void wait(ShardTransfer& xfer, const char* what) {
    t_.wait(xfer.header, what);
    t_.wait(xfer.values, what);
    t_.wait(xfer.meta, what);
  }

 private:
  RingTransport& t_;
};

void progress_trampoline(void* transport) { static_cast<RingTransport*>(transport)->progress(); }

}  // namespace

RingAttention::RingAttention(device::Backend& backend, RingTransport& transport, RingOptions options)
    : backend_(backend), transport_(transport), options_(options) {}

void RingAttention::forward(const RingShard& s, float* out, float* lse) {
  check_shard(s);
  const int n = transport_.size(), me = transport_.rank();
  const Sizes sz = sizes_of(s);
  const device::ProgressHook hook{&progress_trampoline, &transport_};
  Exchanger ex(transport_);
  stats_.assign(n, RingStepStats{});

  ShardBuffer buf[2];
  for (auto& b : buf) {
    b.values = device::DeviceArray<float>(backend_, 2 * sz.kv_elems);
    b.meta = device::DeviceArray<int32_t>(backend_, 2 * sz.tok_elems);
  }
  backend_.copy_device_to_device(buf[0].values.data(), s.k, sz.kv_elems * sizeof(float));
  backend_.copy_device_to_device(buf[0].values.data() + sz.kv_elems, s.v, sz.kv_elems * sizeof(float));
  backend_.copy_device_to_device(buf[0].meta.data(), s.pos, sz.tok_elems * sizeof(int32_t));
  backend_.copy_device_to_device(buf[0].meta.data() + sz.tok_elems, s.seg, sz.tok_elems * sizeof(int32_t));
  backend_.fill(out, static_cast<std::size_t>(s.batch) * s.n_local * s.heads * s.head_dim, 0.f);
  backend_.fill(lse, static_cast<std::size_t>(s.batch) * s.heads * s.n_local,
                -std::numeric_limits<float>::infinity());

  device::AttnProblem problem;
  problem.shape = {s.batch, s.n_local, s.n_local, s.heads, s.kv_heads, s.head_dim};
  problem.causal = options_.causal;
  problem.tiling = options_.tiling;
  device::AttnFwdStepArgs args = device::make_attn_fwd_args(problem, {s.q, s.pos, s.seg}, {}, out, lse);

  const std::size_t payload = buf[0].values.n_bytes() + buf[0].meta.n_bytes();
  for (int t = 0; t < n; ++t) {
    ShardBuffer& cur = buf[t % 2];
    ShardBuffer& nxt = buf[(t + 1) % 2];
    ShardTransfer sending, receiving;
    if (t + 1 < n) {  // post the next shard's move before computing on this one
      cur.header = make_header(RingPayload::kv_forward, t + 1, options_.layer, mod(me - t, n), s, payload);
      stats_[t].bytes_sent = ex.send_shard(cur, sending);
      ex.recv_shard(nxt, receiving);
    }
    device::set_attn_keys(args, {cur.values.data(), cur.values.data() + sz.kv_elems, cur.meta.data(),
                                 cur.meta.data() + sz.tok_elems});
    activity::set_ring_step(t, n);
    activity::maybe_inject_stall(t);
    const double t0 = wall_seconds();
    backend_.attn_fwd_step(args, hook);
    backend_.synchronize(hook);
    const double t1 = wall_seconds();
    if (t + 1 < n) {
      ex.wait(sending, "forward K/V send to next rank");
      ex.wait(receiving, "forward K/V receive from previous rank");
      check_header(nxt.header,
                   make_header(RingPayload::kv_forward, t + 1, options_.layer, mod(me - t - 1, n), s, payload),
                   me);
    }
    stats_[t].step = t;
    stats_[t].compute_s = t1 - t0;
    stats_[t].wait_s = wall_seconds() - t1;
  }
}

void RingAttention::backward(const RingShard& s, const float* out, const float* dout, const float* lse,
                             float* dq, float* dk, float* dv) {
  check_shard(s);
  const int n = transport_.size(), me = transport_.rank();
  const Sizes sz = sizes_of(s);
  const device::ProgressHook hook{&progress_trampoline, &transport_};
  Exchanger ex(transport_);
  stats_.assign(n, RingStepStats{});

  ShardBuffer buf[2];
  for (auto& b : buf) {
    b.values = device::DeviceArray<float>(backend_, 2 * sz.kv_elems);
    b.meta = device::DeviceArray<int32_t>(backend_, 2 * sz.tok_elems);
  }
  backend_.copy_device_to_device(buf[0].values.data(), s.k, sz.kv_elems * sizeof(float));
  backend_.copy_device_to_device(buf[0].values.data() + sz.kv_elems, s.v, sz.kv_elems * sizeof(float));
  backend_.copy_device_to_device(buf[0].meta.data(), s.pos, sz.tok_elems * sizeof(int32_t));
  backend_.copy_device_to_device(buf[0].meta.data() + sz.tok_elems, s.seg, sz.tok_elems * sizeof(int32_t));

  // dK|dV accumulators (fp32): this step's, the one received from the previous rank, and the
  // one being sent to the next rank.
  device::DeviceArray<float> dkv_step(backend_, 2 * sz.kv_elems), dkv_in(backend_, 2 * sz.kv_elems),
      dkv_out(backend_, 2 * sz.kv_elems);
  RingHeader dkv_in_header, dkv_out_header;
  device::DeviceArray<float> delta(backend_, static_cast<std::size_t>(s.batch) * s.heads * s.n_local);

  device::AttnShape shape{s.batch, s.n_local, s.n_local, s.heads, s.kv_heads, s.head_dim};
  backend_.attn_row_dot(shape, out, dout, delta.data());
  backend_.fill(dq, static_cast<std::size_t>(s.batch) * s.n_local * s.heads * s.head_dim, 0.f);

  device::AttnProblem problem;
  problem.shape = shape;
  problem.causal = options_.causal;
  problem.tiling = options_.tiling;
  device::AttnBwdStepArgs args =
      device::make_attn_bwd_args(problem, {s.q, s.pos, s.seg}, {}, dout, lse, delta.data(), dq, nullptr, nullptr);

  const std::size_t payload = buf[0].values.n_bytes() + buf[0].meta.n_bytes();
  const std::size_t dkv_bytes = dkv_out.n_bytes();
  RingTransport::Request dkv_send_header = RingTransport::kNoRequest, dkv_send = RingTransport::kNoRequest;
  for (int t = 0; t < n; ++t) {
    ShardBuffer& cur = buf[t % 2];
    ShardBuffer& nxt = buf[(t + 1) % 2];
    ShardTransfer sending, receiving;
    if (t + 1 < n) {
      cur.header = make_header(RingPayload::kv_backward, t + 1, options_.layer, mod(me - t, n), s, payload);
      stats_[t].bytes_sent = ex.send_shard(cur, sending);
      ex.recv_shard(nxt, receiving);
    }
    RingTransport::Request dkv_recv_header = RingTransport::kNoRequest, dkv_recv = RingTransport::kNoRequest;
    if (t > 0) {  // the partial dK|dV of the shard in hand, one hop behind it
      dkv_recv_header = transport_.post_recv_prev(&dkv_in_header, sizeof(RingHeader), kTagDkvHeader);
      dkv_recv = transport_.post_recv_prev(dkv_in.data(), dkv_bytes, kTagDkvPayload);
    }
    backend_.fill(dkv_step.data(), dkv_step.size(), 0.f);
    device::set_attn_keys(args, {cur.values.data(), cur.values.data() + sz.kv_elems, cur.meta.data(),
                                 cur.meta.data() + sz.tok_elems});
    args.dk = dkv_step.data();
    args.dv = dkv_step.data() + sz.kv_elems;
    activity::set_ring_step(t, n);
    const double t0 = wall_seconds();
    backend_.attn_bwd_step(args, hook);
    backend_.synchronize(hook);
    const double t1 = wall_seconds();
    const int origin = mod(me - t, n);
    if (t > 0) {
      transport_.wait(dkv_recv_header, "backward dK/dV receive from previous rank");
      transport_.wait(dkv_recv, "backward dK/dV receive from previous rank");
      check_header(dkv_in_header,
                   make_header(RingPayload::dkv_backward, t, options_.layer, origin, s, dkv_bytes), me);
      backend_.add_inplace(dkv_step.data(), dkv_in.data(), dkv_step.size());
    }
    transport_.wait(dkv_send_header, "backward dK/dV send to next rank");
    transport_.wait(dkv_send, "backward dK/dV send to next rank");
    std::swap(dkv_step, dkv_out);
    dkv_out_header = make_header(RingPayload::dkv_backward, t + 1, options_.layer, origin, s, dkv_bytes);
    dkv_send_header = transport_.post_send_next(&dkv_out_header, sizeof(RingHeader), kTagDkvHeader);
    dkv_send = transport_.post_send_next(dkv_out.data(), dkv_bytes, kTagDkvPayload);
    stats_[t].bytes_sent += sizeof(RingHeader) + dkv_bytes;
    if (t + 1 < n) {
      ex.wait(sending, "backward K/V send to next rank");
      ex.wait(receiving, "backward K/V receive from previous rank");
      check_header(nxt.header,
                   make_header(RingPayload::kv_backward, t + 1, options_.layer, mod(me - t - 1, n), s, payload),
                   me);
    }
    stats_[t].step = t;
    stats_[t].compute_s = t1 - t0;
    stats_[t].wait_s = wall_seconds() - t1;
  }
  // The last hop brings this rank's own dK|dV home, summed over every query of the ring.
  const double t_home = wall_seconds();
  RingTransport::Request home_header = transport_.post_recv_prev(&dkv_in_header, sizeof(RingHeader), kTagDkvHeader);
  RingTransport::Request home = transport_.post_recv_prev(dkv_in.data(), dkv_bytes, kTagDkvPayload);
  transport_.wait(home_header, "backward final dK/dV receive");
  transport_.wait(home, "backward final dK/dV receive");
  transport_.wait(dkv_send_header, "backward final dK/dV send");
  transport_.wait(dkv_send, "backward final dK/dV send");
  check_header(dkv_in_header, make_header(RingPayload::dkv_backward, n, options_.layer, me, s, dkv_bytes), me);
  backend_.copy_device_to_device(dk, dkv_in.data(), sz.kv_elems * sizeof(float));
  backend_.copy_device_to_device(dv, dkv_in.data() + sz.kv_elems, sz.kv_elems * sizeof(float));
  stats_[n - 1].wait_s += wall_seconds() - t_home;
}

}  // namespace rw
