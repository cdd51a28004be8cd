// fsdp_params.cpp: see fsdp_params.h.
#include "src/train/fsdp_params.h"

#include <algorithm>

#include "src/common/fatal.h"
#include "src/common/timer.h"
#include "src/model/param_init.h"

namespace rw::train {

// A kept buffer for one all-gathered unit (fsdp_params.h).
struct FsdpParams::GatherBuffer {
  enum class State { empty, in_flight, held, cached };
  device::DeviceArray<float> full;  // the largest padded unit
  State state = State::empty;
  int unit = -1;
  int holds = 0;
  bool prefetched = false;
  int64_t released_at = 0;
  mpi::DeviceTransfers::Request request = mpi::DeviceTransfers::kNoRequest;
  std::unique_ptr<device::Event> free_after;  // behind the last kernels that read it (release)
};

// A kept buffer for one reduce-scatter: the packed padded unit and the shard result.
struct FsdpParams::ScatterBuffer {
  device::DeviceArray<float> send, result;
  bool busy = false;
  int unit = -1;
  int64_t posted_at = 0;
  mpi::DeviceTransfers::Request request = mpi::DeviceTransfers::kNoRequest;
  std::unique_ptr<device::Event> send_ready;   // behind the copy of the gradient into send
  std::unique_ptr<device::Event> result_free;  // behind the add that read result
};

namespace {

device::ExecContext context_or_own(device::ExecContext ctx, std::unique_ptr<device::Backend>& own) {
  if (ctx.backend) {
    if (!ctx.compute) ctx.compute = &ctx.backend->default_stream();
    return ctx;
  }
  own = device::create_backend("cpu");
  return device::ExecContext::on_default_stream(*own);
}

void fill_zero(device::Backend& b, device::Stream& s, float* p, int64_t n) {
  if (n > 0) b.fill(device::FillArgs{device::view(p, {n}), 0.0}, s);
}

}  // namespace

FsdpParams::FsdpParams(const model::LlamaConfig& config, mpi::ProcessGrid& grid, device::ExecContext context,
                       FsdpOptions options)
    : units_(model::parameter_units(config)),
      grid_(grid),
      ctx_(context_or_own(context, own_backend_)),
      options_(options) {
  RW_CHECK(options_.gather_buffers >= 1 && options_.scatter_buffers >= 1, "FSDP needs at least one buffer of each kind");
  RW_CHECK(options_.gather_dtype == device::DType::f32 || options_.gather_dtype == device::DType::bf16,
           "FSDP gathers f32 or bf16 weights only");
  device::Backend& b = *ctx_.backend;
  const int64_t n = grid.size(), r = grid.rank();
  shards_.resize(units_.size());
  for (std::size_t u = 0; u < units_.size(); ++u) {
    Shard& s = shards_[u];
    s.shard_count = (units_[u].count + n - 1) / n;
    s.begin = std::min(units_[u].count, r * s.shard_count);
    s.end = std::min(units_[u].count, (r + 1) * s.shard_count);
    const auto count = static_cast<std::size_t>(s.shard_count);
    s.weights = device::DeviceArray<float>(b, count);
    s.grads = device::DeviceArray<float>(b, count);
    s.adam_m = device::DeviceArray<float>(b, count);
    s.adam_v = device::DeviceArray<float>(b, count);
    s.decay = device::DeviceArray<uint8_t>(b, count);
    if (options_.gather_dtype == device::DType::bf16) s.weights_bf16 = device::DeviceArray<device::bf16_t>(b, count);
    for (auto* a : {&s.weights, &s.grads, &s.adam_m, &s.adam_v}) fill_zero(b, *ctx_.compute, a->data(), s.shard_count);
    std::vector<uint8_t> decay(count, 0);
    for (int64_t i = s.begin; i < s.end; ++i) {
      std::size_t t = 0;
      while (t + 1 < units_[u].offsets.size() && i >= units_[u].offsets[t + 1]) ++t;
      decay[i - s.begin] = units_[u].tensors[t].is_norm ? 0 : 1;
    }
    if (count > 0) s.decay.upload(decay.data());
    max_padded_ = std::max(max_padded_, s.shard_count * n);
    max_shard_ = std::max(max_shard_, s.shard_count);
  }
  gather_comm_ = std::make_unique<mpi::AsyncCollectives>(grid, grid.ring_timeout_s());
  reduce_comm_ = std::make_unique<mpi::AsyncCollectives>(grid, grid.ring_timeout_s());
  const mpi::TransferPath path = mpi::choose_transfer_path(b.capabilities(), options_.transfer_path);
  const std::string peers = " (over the grid's " + std::to_string(grid.size()) + " ranks)";
  gathers_ = std::make_unique<mpi::DeviceTransfers>(b, path, grid.ring_timeout_s(), peers);
  reductions_ = std::make_unique<mpi::DeviceTransfers>(b, path, grid.ring_timeout_s(), peers);
  // A wait on one communicator drives the other (a peer may be waiting for it).
  gathers_->set_wait_hook(reductions_->hook());
  reductions_->set_wait_hook(gathers_->hook());
  weights_ready_ = b.create_event();
  sum_scratch_ = device::DeviceArray<double>(b, 1);
}

FsdpParams::~FsdpParams() {
  complete_gathers();
  for (auto& s : scatter_buffers_)
    if (s->busy) reductions_->wait(s->request, nullptr);
  ctx_.backend->synchronize(*ctx_.compute);
}

std::vector<FsdpParams::Shard>& FsdpParams::shards() {
  // The caller may write the shards: nothing may still read the weights or add into the grads,
  // and the next all-gather must wait for what the caller enqueues from now on.
  complete_gathers();
  finish_grad_reductions();
  weights_changed_ = true;
  return shards_;
}

device::Event& FsdpParams::weights_ready() {
  if (weights_changed_) {
    if (gathers_bf16())  // refresh the bf16 working copy of every shard from the fp32 masters
      for (Shard& s : shards_) {
        device::ConvertArgs c;
        c.x = device::view(static_cast<const float*>(s.weights.data()), {s.shard_count});
        c.y = device::view(s.weights_bf16.data(), {s.shard_count});
        ctx_.backend->convert(c, *ctx_.compute);
      }
    ctx_.backend->record(*weights_ready_, *ctx_.compute);
    weights_changed_ = false;
  }
  return *weights_ready_;
}

void FsdpParams::initialize(uint64_t seed) {
  complete_gathers();
  for (std::size_t u = 0; u < units_.size(); ++u) {
    Shard& s = shards_[u];
    HostVector<float> values(static_cast<std::size_t>(s.shard_count), 0.f);
    for (int64_t i = s.begin; i < s.end; ++i)
      values[i - s.begin] = model::initial_value(seed, static_cast<int>(u), units_[u], i);
    if (!values.empty()) s.weights.upload(values.data());
  }
  weights_changed_ = true;
}

void FsdpParams::zero_grads() {
  finish_grad_reductions();
  for (Shard& s : shards_) fill_zero(*ctx_.backend, *ctx_.compute, s.grads.data(), s.shard_count);
}

// ---- all-gathers ----

FsdpParams::GatherBuffer* FsdpParams::find_gathered(int unit) {
  for (auto& g : gather_buffers_)
    if (g->unit == unit && g->state != GatherBuffer::State::empty) return g.get();
  return nullptr;
}

FsdpParams::GatherBuffer* FsdpParams::free_gather_buffer(bool may_grow) {
  // An empty buffer, else a new one while fewer than options_.gather_buffers exist, else the
  // least recently released one (so with a buffer per unit every unit stays gathered: the
  // resident weights of generation); the same choice on every rank (it depends only on the
  // call sequence), so every rank posts the same collectives.
  GatherBuffer* best = nullptr;
  for (auto& g : gather_buffers_) {
    if (g->state == GatherBuffer::State::empty) return g.get();
    if (g->state == GatherBuffer::State::cached && (!best || g->released_at < best->released_at)) best = g.get();
  }
  const bool below_limit = static_cast<int>(gather_buffers_.size()) < options_.gather_buffers;
  if (below_limit || (!best && may_grow)) {
    auto g = std::make_unique<GatherBuffer>();
    g->full = device::DeviceArray<float>(*ctx_.backend, static_cast<std::size_t>(max_padded_));
    g->free_after = ctx_.backend->create_event();
    gather_buffers_.push_back(std::move(g));
    best = gather_buffers_.back().get();
  }
  return best;
}

void FsdpParams::start_gather(GatherBuffer& g, int unit) {
  const Shard& s = shards_[unit];
  const std::size_t shard = static_cast<std::size_t>(s.shard_count);
  g.unit = unit;
  g.state = GatherBuffer::State::in_flight;
  auto inner = std::make_shared<mpi::AsyncCollectives::Request>(mpi::AsyncCollectives::kNoRequest);
  mpi::AsyncCollectives* comm = gather_comm_.get();
  const bool bf16 = gathers_bf16();
  const std::size_t elem = bf16 ? sizeof(device::bf16_t) : sizeof(float);
  const std::string what = "FSDP all-gather of unit " + std::to_string(unit) + " (" + std::to_string(shard) +
                           (bf16 ? " bf16" : " floats") + " per rank)";
  mpi::MpiOpHooks hooks;
  hooks.post = [comm, inner, shard, bf16](const void* in, void* out) {
    if (bf16)
      *inner = comm->post_allgather(static_cast<const std::uint16_t*>(in), shard, static_cast<std::uint16_t*>(out));
    else
      *inner = comm->post_allgather(static_cast<const float*>(in), shard, static_cast<float*>(out));
  };
  hooks.test = [comm, inner] { return comm->test(*inner); };
  device::Event* ready = &weights_ready();  // first: it may enqueue the bf16 refresh
  const void* in = bf16 ? static_cast<const void*>(s.weights_bf16.data()) : static_cast<const void*>(s.weights.data());
  g.request = gathers_->post(in, shard * elem, ready, g.full.data(), shard * grid_.size() * elem,
                             g.free_after.get(), std::move(hooks), what);
}

void FsdpParams::prefetch(int unit) {
  RW_CHECK(unit >= 0 && unit < static_cast<int>(units_.size()), "FSDP prefetch of unknown unit " + std::to_string(unit));
  if (find_gathered(unit)) return;
  GatherBuffer* g = free_gather_buffer(false);
  if (!g) return;  // every buffer is in use: the gather will fetch it
  start_gather(*g, unit);
  g->prefetched = true;
}

const float* FsdpParams::gather(int unit) {
  RW_CHECK(!gathers_bf16(), "FSDP: gather() of fp32 weights from a bf16 gather (use gather_bf16)");
  return static_cast<const float*>(gather_any(unit));
}

const device::bf16_t* FsdpParams::gather_bf16(int unit) {
  RW_CHECK(gathers_bf16(), "FSDP: gather_bf16() without a bf16 working copy (FsdpOptions::gather_dtype)");
  return static_cast<const device::bf16_t*>(gather_any(unit));
}

void* FsdpParams::gather_any(int unit) {
  RW_CHECK(unit >= 0 && unit < static_cast<int>(units_.size()), "FSDP gather of unknown unit " + std::to_string(unit));
  ++stats_.gathers;
  GatherBuffer* g = find_gathered(unit);
  if (!g) {
    g = free_gather_buffer(true);
    start_gather(*g, unit);
    g->prefetched = false;
  } else if (g->state == GatherBuffer::State::cached) {
    ++stats_.gathers_cached;
  }
  if (g->state == GatherBuffer::State::in_flight) {
    if (g->prefetched) ++stats_.gathers_prefetched;
    const double t0 = wall_seconds();
    gathers_->wait(g->request, ctx_.compute);
    stats_.gather_wait_s += wall_seconds() - t0;
  }
  if (g->state == GatherBuffer::State::held) ++g->holds;
  else g->holds = 1;
  g->state = GatherBuffer::State::held;
  gathers_->progress();
  reductions_->progress();
  return g->full.data();
}

void FsdpParams::release(int unit) {
  GatherBuffer* g = find_gathered(unit);
  RW_CHECK(g && g->state == GatherBuffer::State::held, "FSDP release of unit " + std::to_string(unit) +
                                                           " that is not gathered");
  if (--g->holds > 0) return;
  ctx_.backend->record(*g->free_after, *ctx_.compute);
  g->state = GatherBuffer::State::cached;
  g->released_at = ++use_clock_;
  gathers_->progress();
  reductions_->progress();
}

void FsdpParams::complete_gathers() {
  // The weights are about to change: finish what reads them and forget what was gathered.
  for (auto& g : gather_buffers_) {
    if (g->state == GatherBuffer::State::in_flight) gathers_->wait(g->request, nullptr);
    if (g->state != GatherBuffer::State::held) {
      g->state = GatherBuffer::State::empty;
      g->unit = -1;
    }
  }
}

// ---- reduce-scatters ----

void FsdpParams::reduce_grad(int unit, const float* grad) {
  RW_CHECK(unit >= 0 && unit < static_cast<int>(units_.size()), "FSDP reduce_grad of unknown unit " + std::to_string(unit));
  ++stats_.reductions;
  device::Backend& b = *ctx_.backend;
  device::Stream& compute = *ctx_.compute;
  ScatterBuffer* s = nullptr;
  for (auto& c : scatter_buffers_)
    if (!c->busy) s = c.get();
  if (!s && static_cast<int>(scatter_buffers_.size()) < options_.scatter_buffers) {
    auto c = std::make_unique<ScatterBuffer>();
    c->send = device::DeviceArray<float>(b, static_cast<std::size_t>(max_padded_));
    c->result = device::DeviceArray<float>(b, static_cast<std::size_t>(max_shard_));
    c->send_ready = b.create_event();
    c->result_free = b.create_event();
    scatter_buffers_.push_back(std::move(c));
    s = scatter_buffers_.back().get();
  }
  if (!s) {  // all in flight: the oldest completes first
    for (auto& c : scatter_buffers_)
      if (!s || c->posted_at < s->posted_at) s = c.get();
    const double t0 = wall_seconds();
    finish_reduction(*s);
    stats_.reduce_wait_s += wall_seconds() - t0;
  }
  // Copy the gradient into the send buffer (compute stream: the caller may reuse grad after
  // this call), packed as AsyncCollectives::post_reduce_scatter_sum wants: rank-major blocks of
  // shard_count, split into pieces when one call would move too much; padding is zero.
  const Shard& sh = shards_[unit];
  const int64_t S = sh.shard_count, n = grid_.size(), count = units_[unit].count;
  const int64_t piece = static_cast<int64_t>(reduce_comm_->piece_elems());
  float* send = s->send.data();
  if (S <= piece) {
    b.copy_async(send, grad, static_cast<std::size_t>(count) * sizeof(float), compute);
    fill_zero(b, compute, send + count, n * S - count);
  } else {
    for (int64_t o = 0; o < S; o += piece) {
      const int64_t len = std::min(piece, S - o);
      for (int64_t r = 0; r < n; ++r) {
        float* dst = send + o * n + r * len;
        const int64_t first = r * S + o, have = std::max<int64_t>(0, std::min(len, count - first));
        if (have > 0) b.copy_async(dst, grad + first, static_cast<std::size_t>(have) * sizeof(float), compute);
        fill_zero(b, compute, dst + have, len - have);
      }
    }
  }
  b.record(*s->send_ready, compute);
  auto inner = std::make_shared<mpi::AsyncCollectives::Request>(mpi::AsyncCollectives::kNoRequest);
  mpi::AsyncCollectives* comm = reduce_comm_.get();
  const std::size_t shard = static_cast<std::size_t>(S);
  const std::string what =
      "FSDP reduce-scatter of unit " + std::to_string(unit) + " (" + std::to_string(shard) + " floats per rank)";
  mpi::MpiOpHooks hooks;
  hooks.post = [comm, inner, shard](const void* in, void* out) {
    *inner = comm->post_reduce_scatter_sum(static_cast<const float*>(in), static_cast<float*>(out), shard);
  };
  hooks.test = [comm, inner] { return comm->test(*inner); };
  s->request = reductions_->post(send, shard * n * sizeof(float), s->send_ready.get(), s->result.data(),
                                 shard * sizeof(float), s->result_free.get(), std::move(hooks), what);
  s->busy = true;
  s->unit = unit;
  s->posted_at = ++use_clock_;
  gathers_->progress();
}

void FsdpParams::finish_reduction(ScatterBuffer& s) {
  device::Backend& b = *ctx_.backend;
  device::Stream& compute = *ctx_.compute;
  reductions_->wait(s.request, &compute);
  Shard& sh = shards_[s.unit];
  const int64_t S = sh.shard_count;
  if (S > 0)
    b.add(device::AddArgs{device::view(static_cast<const float*>(s.result.data()), {S}), device::view(sh.grads.data(), {S})},
          compute);
  b.record(*s.result_free, compute);
  s.busy = false;
  s.unit = -1;
}

void FsdpParams::progress() {
  gathers_->progress();
  reductions_->progress();
}

void FsdpParams::finish_grad_reductions() {
  const double t0 = wall_seconds();
  bool any = false;
  for (;;) {  // in posting order: the adds into one unit's grads keep their order
    ScatterBuffer* oldest = nullptr;
    for (auto& c : scatter_buffers_)
      if (c->busy && (!oldest || c->posted_at < oldest->posted_at)) oldest = c.get();
    if (!oldest) break;
    finish_reduction(*oldest);
    any = true;
  }
  if (any) stats_.reduce_wait_s += wall_seconds() - t0;
}

double FsdpParams::local_grad_sum_squares() {
  finish_grad_reductions();
  device::Backend& b = *ctx_.backend;
  device::Stream& compute = *ctx_.compute;
  b.fill(device::FillArgs{device::view(sum_scratch_.data(), {1}), 0.0}, compute);
  for (const Shard& s : shards_) {
    const int64_t owned = s.end - s.begin;
    if (owned > 0)
      b.sum_squares(device::SumSquaresArgs{{device::view(static_cast<const float*>(s.grads.data()), {owned}),
                                            device::view(sum_scratch_.data(), {1})}},
                    compute);
  }
  double local = 0;
  sum_scratch_.download(&local);
  return local;
}

// ---- sizes, stats ----

int64_t FsdpParams::bytes_at_rest() const {
  int64_t n = 0;
  for (const Shard& s : shards_) n += 4 * s.shard_count * 4 + static_cast<int64_t>(s.weights_bf16.n_bytes());
  return n;
}

FsdpParams::Stats FsdpParams::stats() const {
  Stats s = stats_;
  s.collective_calls = static_cast<int64_t>(gather_comm_->calls() + reduce_comm_->calls());
  return s;
}

void FsdpParams::reset_stats() { stats_ = Stats{}; }

std::size_t FsdpParams::workspace_bytes() const {
  std::size_t n = 0;
  for (const auto& g : gather_buffers_) n += g->full.n_bytes();
  for (const auto& s : scatter_buffers_) n += s->send.n_bytes() + s->result.n_bytes();
  return n;
}

// ---- host staging (checkpoint and parameter files) ----

device::DeviceArray<float>& FsdpParams::field_of(Shard& s, io::ShardField field) {
  switch (field) {
    case io::ShardField::weights: return s.weights;
    case io::ShardField::grads: return s.grads;
    case io::ShardField::adam_m: return s.adam_m;
    case io::ShardField::adam_v: return s.adam_v;
  }
  RW_FAIL("unknown shard field");
}

void FsdpParams::download_shard(int unit, io::ShardField field, float* host) {
  finish_grad_reductions();
  device::DeviceArray<float>& a = field_of(shards_[unit], field);
  if (a.size() > 0) a.download(host);
}

void FsdpParams::upload_shard(int unit, io::ShardField field, const float* host) {
  complete_gathers();
  finish_grad_reductions();
  device::DeviceArray<float>& a = field_of(shards_[unit], field);
  if (a.size() > 0) a.upload(host);
  if (field == io::ShardField::weights) weights_changed_ = true;
}

std::vector<io::TensorPart> FsdpParams::tensor_parts() const {
  std::vector<io::TensorPart> parts;
  for (std::size_t u = 0; u < units_.size(); ++u) {
    const Shard& s = shards_[u];
    for (std::size_t t = 0; t < units_[u].tensors.size(); ++t) {
      const int64_t t_begin = units_[u].offsets[t], t_end = t_begin + units_[u].tensors[t].count();
      const int64_t lo = std::max(t_begin, s.begin), hi = std::min(t_end, s.end);
      io::TensorPart p;
      p.name = units_[u].tensors[t].name;
      p.shape = units_[u].tensors[t].shape;
      p.begin = hi > lo ? lo - t_begin : 0;
      p.end = hi > lo ? hi - t_begin : 0;
      parts.push_back(std::move(p));
    }
  }
  return parts;
}

namespace {

// Pointers into per-unit host copies of a field, one per tensor part (tensor_parts() order).
template <class Pointer, class Shards, class Units, class Staging>
std::vector<Pointer> part_pointers(const Shards& shards, const Units& units, Staging& staging) {
  std::vector<Pointer> out;
  for (std::size_t u = 0; u < units.size(); ++u)
    for (std::size_t t = 0; t < units[u].tensors.size(); ++t) {
      const int64_t lo = std::max(units[u].offsets[t], shards[u].begin);
      out.push_back(staging[u].data() + std::clamp<int64_t>(lo - shards[u].begin, 0, shards[u].shard_count));
    }
  return out;
}

}  // namespace

std::vector<const float*> FsdpParams::stage_out(io::ShardField field) {
  staging_.resize(units_.size());
  for (std::size_t u = 0; u < units_.size(); ++u) {
    staging_[u].resize(static_cast<std::size_t>(shards_[u].shard_count) + 1);  // +1: a valid pointer when empty
    download_shard(static_cast<int>(u), field, staging_[u].data());
  }
  return part_pointers<const float*>(shards_, units_, staging_);
}

std::vector<float*> FsdpParams::stage_in(io::ShardField field) {
  staging_.resize(units_.size());
  for (std::size_t u = 0; u < units_.size(); ++u) staging_[u].assign(static_cast<std::size_t>(shards_[u].shard_count) + 1, 0.f);
  return part_pointers<float*>(shards_, units_, staging_);
}

void FsdpParams::commit_in(io::ShardField field) {
  RW_CHECK(staging_.size() == units_.size(), "FSDP commit_in without stage_in");
  for (std::size_t u = 0; u < units_.size(); ++u) upload_shard(static_cast<int>(u), field, staging_[u].data());
  end_staging();
}

void FsdpParams::end_staging() { std::vector<HostVector<float>>().swap(staging_); }

}  // namespace rw::train
