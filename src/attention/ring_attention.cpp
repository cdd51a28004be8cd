// ring_attention.cpp: the forward and backward ring schedules (see ring_attention.h).
#include "src/attention/ring_attention.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "device/attention_builder.h"
#include "src/common/activity.h"
#include "src/common/fatal.h"
#include "src/common/timer.h"

namespace rw {
namespace {

// Message tags: a header and a payload per channel. Messages on one tag between one pair of
// ranks arrive in posting order, which is what matches step t's send with step t's receive.
constexpr int kTagKvHeader = 101, kTagKvPayload = 102, kTagDkvHeader = 103, kTagDkvPayload = 104;

struct Sizes {
  std::size_t kv_elems;    // one of K or V
  std::size_t tok_elems;   // one of pos or seg
};

Sizes sizes_of(const RingShard& s) {
  return {static_cast<std::size_t>(s.batch) * s.n_local * s.kv_heads * s.head_dim,
          static_cast<std::size_t>(s.batch) * s.n_local};
}

// Bytes of one K or V element as it is stored and travels (RingShard::dtype).
std::size_t value_size(const RingShard& s) { return device::dtype_size(s.dtype); }

// The V half of a slot's values (K first, then V, each kv_elems in the shard's dtype).
const float* v_of(const float* values, const RingShard& s) {
  return reinterpret_cast<const float*>(reinterpret_cast<const char*>(values) + sizes_of(s).kv_elems * value_size(s));
}

void check_shard(const RingShard& s) {
  RW_CHECK(s.batch > 0 && s.n_local > 0 && s.head_dim > 0 && s.kv_heads > 0 && s.heads > 0,
           "empty or malformed ring shard");
  RW_CHECK(s.heads % s.kv_heads == 0, "heads must be a multiple of kv_heads");
  RW_CHECK(s.dtype == device::DType::f32 || s.dtype == device::DType::bf16, "ring shard: q/k/v must be f32 or bf16");
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

// Grows a kept device array to at least `count` elements (never shrinks: allocate once per run).
template <class T>
void ensure(device::DeviceArray<T>& a, device::Backend& backend, std::size_t count) {
  if (a.size() < count) a = device::DeviceArray<T>(backend, count);
}

enum class SkipEvent { none, kv_send, dkv_send };

SkipEvent parse_skip(std::string name) {
  if (name.empty()) {
    const char* env = std::getenv("RINGWORLD_TEST_SKIP_EVENT");
    name = env ? env : "";
  }
  if (name.empty() || name == "none") return SkipEvent::none;
  if (name == "ring_kv_send") return SkipEvent::kv_send;
  if (name == "ring_dkv_send") return SkipEvent::dkv_send;
  // Other components' points (fsdp_*) are theirs to read.
  return SkipEvent::none;
}

}  // namespace

// The kept buffers and events of one RingAttention (ring_attention.h, "Workspace").
struct RingAttention::Workspace {
  // One travelling shard: K then V in `values`, pos then seg in `meta`; its header on the host.
  struct Slot {
    device::DeviceArray<float> values;
    device::DeviceArray<int32_t> meta;
    RingHeader header;
    std::unique_ptr<device::Event> ready;      // behind the copy or landing that filled it
    std::unique_ptr<device::Event> read_done;  // behind the last kernel that read it
  };
  Slot slot[2];
  // dK|dV accumulators (fp32): this step's, the one received, the one being sent.
  device::DeviceArray<float> dkv_step, dkv_in, dkv_out, delta;
  device::DeviceArray<float> dout_f32;  // bf16 shards: dout widened for attn_row_dot (fp32 only)
  RingHeader dkv_in_header, dkv_out_header;
  std::unique_ptr<device::Event> dkv_ready;    // behind the work that completed dkv_out (hazard a)
  std::unique_ptr<device::Event> dkv_in_free;  // behind the last read of dkv_in (hazard b)
  std::unique_ptr<device::Event> never;        // never recorded: the test hook's missing event
  SkipEvent skip = SkipEvent::none;

  explicit Workspace(device::Backend& b) {
    for (Slot& s : slot) {
      s.ready = b.create_event();
      s.read_done = b.create_event();
    }
    dkv_ready = b.create_event();
    dkv_in_free = b.create_event();
    never = b.create_event();
  }
};

RingAttention::RingAttention(device::ExecContext context, mpi::RingTransport& transport, RingOptions options)
    : ctx_(context),
      transport_(transport),
      ring_(transport, *context.backend, options.transfer_path),
      dkv_ring_(transport, *context.backend, options.transfer_path),
      options_(std::move(options)),
      ws_(std::make_unique<Workspace>(*context.backend)) {
  RW_CHECK(ctx_.backend && ctx_.compute, "RingAttention: the execution context has no backend or stream");
  ws_->skip = parse_skip(options_.test_skip_event);
  // A wait on one channel drives the other too (a neighbour may be waiting for it).
  ring_.transfers().set_wait_hook(hook());
  dkv_ring_.transfers().set_wait_hook(hook());
}

RingAttention::RingAttention(device::Backend& backend, mpi::RingTransport& transport, RingOptions options)
    : RingAttention(device::ExecContext::on_default_stream(backend), transport, std::move(options)) {}

RingAttention::~RingAttention() {
  // Work that still reads the workspace finishes before it is released (release would wait too).
  ctx_.backend->synchronize(*ctx_.compute);
}

void RingAttention::progress_both(void* self) {
  auto* a = static_cast<RingAttention*>(self);
  a->ring_.progress();
  a->dkv_ring_.transfers().progress();
}

std::size_t RingAttention::workspace_bytes() const {
  std::size_t n = ws_->dkv_step.n_bytes() + ws_->dkv_in.n_bytes() + ws_->dkv_out.n_bytes() + ws_->delta.n_bytes() +
                  ws_->dout_f32.n_bytes();
  for (const auto& s : ws_->slot) n += s.values.n_bytes() + s.meta.n_bytes();
  return n;
}

void RingAttention::prepare(const RingShard& s) {
  check_shard(s);
  const Sizes sz = sizes_of(s);
  device::Backend& b = *ctx_.backend;
  for (auto& slot : ws_->slot) {
    ensure(slot.values, b, 2 * sz.kv_elems);
    ensure(slot.meta, b, 2 * sz.tok_elems);
  }
  stats_.assign(transport_.size(), RingStepStats{});
}

// The local K, V, pos, seg into slot 0 (stream-ordered copies on compute), and its ready event.
void RingAttention::stage_local_shard(const RingShard& s) {
  const Sizes sz = sizes_of(s);
  device::Backend& b = *ctx_.backend;
  device::Stream& compute = *ctx_.compute;
  auto& slot = ws_->slot[0];
  b.copy_async(slot.values.data(), s.k, sz.kv_elems * value_size(s), compute);
  b.copy_async(const_cast<float*>(v_of(slot.values.data(), s)), s.v, sz.kv_elems * value_size(s), compute);
  b.copy_async(slot.meta.data(), s.pos, sz.tok_elems * sizeof(int32_t), compute);
  b.copy_async(slot.meta.data() + sz.tok_elems, s.seg, sz.tok_elems * sizeof(int32_t), compute);
  b.record(*slot.ready, compute);
}

namespace {

// The posted transfers of one travelling shard in one direction: header (host) and payload.
struct ShardMove {
  mpi::RingTransport::Request header = mpi::RingTransport::kNoRequest;
  mpi::DeviceRing::Request values = mpi::DeviceRing::kNoRequest;
  mpi::DeviceRing::Request meta = mpi::DeviceRing::kNoRequest;
};

}  // namespace

void RingAttention::forward(const RingShard& s, float* out, float* lse) {
  prepare(s);
  const int n = transport_.size(), me = transport_.rank();
  const Sizes sz = sizes_of(s);
  device::Backend& b = *ctx_.backend;
  device::Stream& compute = *ctx_.compute;
  const device::ProgressHook hook = this->hook();
  Workspace& w = *ws_;

  stage_local_shard(s);
  b.fill(device::FillArgs{device::view(out, {int64_t(s.batch) * s.n_local * s.heads * s.head_dim}), 0.0}, compute);
  b.fill(device::FillArgs{device::view(lse, {int64_t(s.batch) * s.heads * s.n_local}),
                          -std::numeric_limits<double>::infinity()},
         compute);

  device::AttnProblem problem;
  problem.shape = {s.batch, s.n_local, s.n_local, s.heads, s.kv_heads, s.head_dim};
  problem.causal = options_.causal;
  problem.tiling = options_.tiling;
  problem.dtype = s.dtype;
  device::AttnFwdStepArgs args = device::make_attn_fwd_args(problem, {s.q, s.pos, s.seg}, {}, out, lse);

  const std::size_t values_bytes = 2 * sz.kv_elems * value_size(s), meta_bytes = 2 * sz.tok_elems * sizeof(int32_t);
  const std::size_t payload = values_bytes + meta_bytes;
  for (int t = 0; t < n; ++t) {
    auto& cur = w.slot[t % 2];
    auto& nxt = w.slot[(t + 1) % 2];
    ShardMove sending, receiving;
    if (t + 1 < n) {  // post the next shard's move before computing on this one
      cur.header = make_header(RingPayload::kv_forward, t + 1, options_.layer, mod(me - t, n), s, payload);
      device::Event& ready = (w.skip == SkipEvent::kv_send && t == 0) ? *w.never : *cur.ready;
      sending.header = transport_.post_send_next(&cur.header, sizeof(RingHeader), kTagKvHeader);
      sending.values = ring_.post_send_next(cur.values.data(), values_bytes, kTagKvPayload, ready,
                                            "forward K/V send to next rank");
      sending.meta = ring_.post_send_next(cur.meta.data(), meta_bytes, kTagKvPayload, ready,
                                          "forward K/V send to next rank");
      stats_[t].bytes_sent = sizeof(RingHeader) + payload;
      receiving.header = transport_.post_recv_prev(&nxt.header, sizeof(RingHeader), kTagKvHeader);
      receiving.values = ring_.post_recv_prev(nxt.values.data(), values_bytes, kTagKvPayload, *nxt.read_done,
                                              "forward K/V receive from previous rank");
      receiving.meta = ring_.post_recv_prev(nxt.meta.data(), meta_bytes, kTagKvPayload, *nxt.read_done,
                                            "forward K/V receive from previous rank");
    }
    device::set_attn_keys(args, {cur.values.data(), v_of(cur.values.data(), s), cur.meta.data(),
                                 cur.meta.data() + sz.tok_elems});
    activity::set_ring_step(t, n);
    activity::maybe_inject_stall(t);
    const double t0 = wall_seconds();
    b.attn_fwd_step(args, hook, compute);
    b.record(*cur.read_done, compute);
    if (options_.wait_each_step) b.host_wait(*cur.read_done, hook);
    const double t1 = wall_seconds();
    if (t + 1 < n) {
      transport_.wait(sending.header, "forward K/V header send to next rank");
      ring_.wait(sending.values);
      ring_.wait(sending.meta);
      transport_.wait(receiving.header, "forward K/V header receive from previous rank");
      check_header(nxt.header,
                   make_header(RingPayload::kv_forward, t + 1, options_.layer, mod(me - t - 1, n), s, payload), me);
      ring_.wait(receiving.values, &compute, nxt.ready.get());
      ring_.wait(receiving.meta, &compute, nxt.ready.get());
    }
    stats_[t].step = t;
    stats_[t].compute_s = t1 - t0;
    stats_[t].wait_s = wall_seconds() - t1;
  }
}

void RingAttention::backward(const RingShard& s, const float* out, const float* dout, const float* lse,
                             float* dq, float* dk, float* dv) {
  prepare(s);
  const int n = transport_.size(), me = transport_.rank();
  const Sizes sz = sizes_of(s);
  device::Backend& b = *ctx_.backend;
  device::Stream& compute = *ctx_.compute;
  const device::ProgressHook hook = this->hook();
  Workspace& w = *ws_;
  ensure(w.dkv_step, b, 2 * sz.kv_elems);
  ensure(w.dkv_in, b, 2 * sz.kv_elems);
  ensure(w.dkv_out, b, 2 * sz.kv_elems);
  ensure(w.delta, b, static_cast<std::size_t>(s.batch) * s.heads * s.n_local);

  stage_local_shard(s);
  device::AttnShape shape{s.batch, s.n_local, s.n_local, s.heads, s.kv_heads, s.head_dim};
  const float* dout_for_delta = dout;
  if (s.dtype == device::DType::bf16) {  // delta = rowsum(out * dout) in fp32 of the bf16 dout
    const int64_t n_out = int64_t(s.batch) * s.n_local * s.heads * s.head_dim;
    ensure(w.dout_f32, b, static_cast<std::size_t>(n_out));
    b.convert(device::ConvertArgs{device::view(reinterpret_cast<const device::bf16_t*>(dout), {n_out}),
                                  device::view(w.dout_f32.data(), {n_out})},
              compute);
    dout_for_delta = w.dout_f32.data();
  }
  b.attn_row_dot(device::AttnRowDotArgs{shape, out, dout_for_delta, w.delta.data()}, compute);
  b.fill(device::FillArgs{device::view(dq, {int64_t(s.batch) * s.n_local * s.heads * s.head_dim}), 0.0}, compute);

  device::AttnProblem problem;
  problem.shape = shape;
  problem.causal = options_.causal;
  problem.tiling = options_.tiling;
  problem.dtype = s.dtype;
  device::AttnBwdStepArgs args =
      device::make_attn_bwd_args(problem, {s.q, s.pos, s.seg}, {}, dout, lse, w.delta.data(), dq, nullptr, nullptr);

  const std::size_t values_bytes = 2 * sz.kv_elems * value_size(s), meta_bytes = 2 * sz.tok_elems * sizeof(int32_t);
  const std::size_t payload = values_bytes + meta_bytes;
  const std::size_t dkv_elems = 2 * sz.kv_elems, dkv_bytes = dkv_elems * sizeof(float);
  mpi::RingTransport::Request dkv_send_header = mpi::RingTransport::kNoRequest;
  mpi::DeviceRing::Request dkv_send = mpi::DeviceRing::kNoRequest;
  for (int t = 0; t < n; ++t) {
    auto& cur = w.slot[t % 2];
    auto& nxt = w.slot[(t + 1) % 2];
    ShardMove sending, receiving;
    if (t + 1 < n) {
      cur.header = make_header(RingPayload::kv_backward, t + 1, options_.layer, mod(me - t, n), s, payload);
      sending.header = transport_.post_send_next(&cur.header, sizeof(RingHeader), kTagKvHeader);
      sending.values = ring_.post_send_next(cur.values.data(), values_bytes, kTagKvPayload, *cur.ready,
                                            "backward K/V send to next rank");
      sending.meta = ring_.post_send_next(cur.meta.data(), meta_bytes, kTagKvPayload, *cur.ready,
                                          "backward K/V send to next rank");
      stats_[t].bytes_sent = sizeof(RingHeader) + payload;
      receiving.header = transport_.post_recv_prev(&nxt.header, sizeof(RingHeader), kTagKvHeader);
      receiving.values = ring_.post_recv_prev(nxt.values.data(), values_bytes, kTagKvPayload, *nxt.read_done,
                                              "backward K/V receive from previous rank");
      receiving.meta = ring_.post_recv_prev(nxt.meta.data(), meta_bytes, kTagKvPayload, *nxt.read_done,
                                            "backward K/V receive from previous rank");
    }
    // The partial dK|dV of the shard in hand, one hop behind it: into dkv_in once the add of
    // the previous step has read it (dkv_in_free: hazard b).
    mpi::RingTransport::Request dkv_recv_header = mpi::RingTransport::kNoRequest;
    mpi::DeviceRing::Request dkv_recv = mpi::DeviceRing::kNoRequest;
    if (t > 0) {
      dkv_recv_header = transport_.post_recv_prev(&w.dkv_in_header, sizeof(RingHeader), kTagDkvHeader);
      dkv_recv = dkv_ring_.post_recv_prev(w.dkv_in.data(), dkv_bytes, kTagDkvPayload, *w.dkv_in_free,
                                      "backward dK/dV receive from previous rank");
    }
    // dkv_step's last send (two steps ago) was waited before the swap that made it dkv_step.
    b.fill(device::FillArgs{device::view(w.dkv_step.data(), {int64_t(dkv_elems)}), 0.0}, compute);
    device::set_attn_keys(args, {cur.values.data(), v_of(cur.values.data(), s), cur.meta.data(),
                                 cur.meta.data() + sz.tok_elems});
    args.dk = w.dkv_step.data();
    args.dv = w.dkv_step.data() + sz.kv_elems;
    activity::set_ring_step(t, n);
    const double t0 = wall_seconds();
    b.attn_bwd_step(args, hook, compute);
    b.record(*cur.read_done, compute);
    if (options_.wait_each_step) b.host_wait(*cur.read_done, hook);
    const double t1 = wall_seconds();
    const int origin = mod(me - t, n);
    if (t > 0) {
      transport_.wait(dkv_recv_header, "backward dK/dV header receive from previous rank");
      check_header(w.dkv_in_header, make_header(RingPayload::dkv_backward, t, options_.layer, origin, s, dkv_bytes),
                   me);
      dkv_ring_.wait(dkv_recv, &compute);
      b.add(device::AddArgs{device::view(static_cast<const float*>(w.dkv_in.data()), {int64_t(dkv_elems)}),
                            device::view(w.dkv_step.data(), {int64_t(dkv_elems)})},
            compute);
      b.record(*w.dkv_in_free, compute);
    }
    transport_.wait(dkv_send_header, "backward dK/dV header send to next rank");
    dkv_ring_.wait(dkv_send);
    std::swap(w.dkv_step, w.dkv_out);
    // dkv_out is complete once the kernel and the add above have run (dkv_ready: hazard a).
    b.record(*w.dkv_ready, compute);
    device::Event& ready = w.skip == SkipEvent::dkv_send ? *w.never : *w.dkv_ready;
    w.dkv_out_header = make_header(RingPayload::dkv_backward, t + 1, options_.layer, origin, s, dkv_bytes);
    dkv_send_header = transport_.post_send_next(&w.dkv_out_header, sizeof(RingHeader), kTagDkvHeader);
    dkv_send = dkv_ring_.post_send_next(w.dkv_out.data(), dkv_bytes, kTagDkvPayload, ready,
                                    "backward dK/dV send to next rank");
    stats_[t].bytes_sent += sizeof(RingHeader) + dkv_bytes;
    if (t + 1 < n) {
      transport_.wait(sending.header, "backward K/V header send to next rank");
      ring_.wait(sending.values);
      ring_.wait(sending.meta);
      transport_.wait(receiving.header, "backward K/V header receive from previous rank");
      check_header(nxt.header,
                   make_header(RingPayload::kv_backward, t + 1, options_.layer, mod(me - t - 1, n), s, payload), me);
      ring_.wait(receiving.values, &compute, nxt.ready.get());
      ring_.wait(receiving.meta, &compute, nxt.ready.get());
    }
    stats_[t].step = t;
    stats_[t].compute_s = t1 - t0;
    stats_[t].wait_s = wall_seconds() - t1;
  }
  // The last hop brings this rank's own dK|dV home, summed over every query of the ring.
  const double t_home = wall_seconds();
  mpi::RingTransport::Request home_header =
      transport_.post_recv_prev(&w.dkv_in_header, sizeof(RingHeader), kTagDkvHeader);
  mpi::DeviceRing::Request home =
      dkv_ring_.post_recv_prev(w.dkv_in.data(), dkv_bytes, kTagDkvPayload, *w.dkv_in_free, "backward final dK/dV receive");
  transport_.wait(home_header, "backward final dK/dV header receive");
  transport_.wait(dkv_send_header, "backward final dK/dV header send");
  dkv_ring_.wait(dkv_send);
  check_header(w.dkv_in_header, make_header(RingPayload::dkv_backward, n, options_.layer, me, s, dkv_bytes), me);
  dkv_ring_.wait(home, &compute);
  b.copy_async(dk, w.dkv_in.data(), sz.kv_elems * sizeof(float), compute);
  b.copy_async(dv, w.dkv_in.data() + sz.kv_elems, sz.kv_elems * sizeof(float), compute);
  b.record(*w.dkv_in_free, compute);
  stats_[n - 1].wait_s += wall_seconds() - t_home;
}

}  // namespace rw
