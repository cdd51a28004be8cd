// local_model.cpp: see local_model.h.
#include "perf/gpu/local_model.h"

#include "src/common/fatal.h"

namespace rw::perf {

LocalDeviceParams::LocalDeviceParams(const device::ExecContext& exec, const model::LlamaConfig& config, bool bf16_copy)
    : exec_(exec), units_(model::parameter_units(config)), bf16_(bf16_copy), scalar_(*exec.backend) {
  device::Backend& b = *exec_.backend;
  for (const model::ParamUnit& unit : units_) {
    const std::size_t n = static_cast<std::size_t>(unit.count);
    weights_.emplace_back(b, n);
    grads_.emplace_back(b, n);
    adam_m_.emplace_back(b, n);
    adam_v_.emplace_back(b, n);
    decay_.emplace_back(b, n);
    if (bf16_) weights16_.emplace_back(b, n);
    std::vector<uint8_t> flags(n, 0);
    for (std::size_t t = 0; t < unit.tensors.size(); ++t)
      for (int64_t i = 0; i < unit.tensors[t].count(); ++i)
        flags[static_cast<std::size_t>(unit.offsets[t] + i)] = unit.tensors[t].is_norm ? 0 : 1;
    decay_.back().upload(flags.data());
    for (auto* a : {&grads_.back(), &adam_m_.back(), &adam_v_.back()})
      b.fill(device::FillArgs{a->view({static_cast<int64_t>(n)}), 0.0}, *exec_.compute);
  }
}

LocalDeviceParams::LocalDeviceParams(const device::ExecContext& exec, const model::LlamaConfig& config, bool bf16_copy,
                                     const std::vector<std::vector<float>>& host_weights)
    : LocalDeviceParams(exec, config, bf16_copy) {
  RW_CHECK(host_weights.size() == units_.size(), "LocalDeviceParams: one host vector per unit expected");
  for (std::size_t u = 0; u < units_.size(); ++u) upload(static_cast<int>(u), host_weights[u]);
}

void LocalDeviceParams::upload(int unit, const std::vector<float>& host) {
  RW_CHECK(static_cast<int64_t>(host.size()) == units_[unit].count, "LocalDeviceParams: unit size mismatch");
  // Synchronous: after the fills above (copy_to_device waits for the backend's pending work).
  weights_[unit].upload(host.data());
  refresh_bf16(unit);
}

void LocalDeviceParams::refresh_bf16(int unit) {
  if (!bf16_) return;
  const int64_t n = units_[unit].count;
  exec_.backend->convert(device::ConvertArgs{device::view(static_cast<const float*>(weights_[unit].data()), {n}),
                                             device::view(weights16_[unit].data(), {n})},
                         *exec_.compute);
}

void LocalDeviceParams::reduce_grad(int unit, const float* grad) {
  const int64_t n = units_[unit].count;
  exec_.backend->add(device::AddArgs{device::view(grad, {n}), device::view(grads_[unit].data(), {n})},
                     *exec_.compute);
}

void LocalDeviceParams::zero_grads() {
  for (auto& g : grads_)
    exec_.backend->fill(device::FillArgs{g.view({static_cast<int64_t>(g.size())}), 0.0}, *exec_.compute);
}

double LocalDeviceParams::grad_sum_squares() {
  scalar_.zero(*exec_.compute);
  for (const auto& g : grads_) {
    device::SumSquaresArgs r;
    r.x = device::view(g.data(), {static_cast<int64_t>(g.size())});
    r.result = scalar_.view();
    exec_.backend->sum_squares(r, *exec_.compute);
  }
  return scalar_.read(*exec_.compute);
}

void LocalDeviceParams::adamw_step(double lr, int t, double grad_multiplier) {
  for (std::size_t u = 0; u < units_.size(); ++u) {
    const int64_t n = units_[u].count;
    device::AdamWArgs a;
    a.weights = device::view(weights_[u].data(), {n});
    a.m = device::view(adam_m_[u].data(), {n});
    a.v = device::view(adam_v_[u].data(), {n});
    a.grads = device::view(static_cast<const float*>(grads_[u].data()), {n});
    a.decay = device::view(static_cast<const uint8_t*>(decay_[u].data()), {n});
    a.lr = lr;
    a.grad_multiplier = grad_multiplier;
    a.step = t;
    exec_.backend->adamw(a, *exec_.compute);
    refresh_bf16(static_cast<int>(u));
  }
}

std::vector<float> LocalDeviceParams::download_grad(int unit) const {
  exec_.backend->synchronize(*exec_.compute);
  std::vector<float> host(grads_[unit].size());
  grads_[unit].download(host.data());
  return host;
}

int64_t LocalDeviceParams::parameter_count() const {
  int64_t n = 0;
  for (const auto& u : units_) n += u.count;
  return n;
}

std::size_t LocalDeviceParams::device_bytes() const {
  std::size_t n = 0;
  for (std::size_t u = 0; u < units_.size(); ++u) {
    n += weights_[u].n_bytes() + grads_[u].n_bytes() + adam_m_[u].n_bytes() + adam_v_[u].n_bytes() +
         decay_[u].n_bytes();
    if (bf16_) n += weights16_[u].n_bytes();
  }
  return n;
}

// ---- attention ----

device::AttnProblem LocalAttention::problem(const model::AttentionShape& s) const {
  return device::make_attn_problem(*exec_.backend, {s.batch, s.n_local, s.n_local, s.heads, s.kv_heads, s.head_dim},
                                   causal_, s.dtype);
}

void LocalAttention::fill(float* x, int64_t n, double value) {
  exec_.backend->fill(device::FillArgs{device::view(x, {n}), value}, *exec_.compute);
}

void LocalAttention::forward(int, const model::AttentionShape& s, const float* q, const float* k, const float* v,
                             const int32_t* pos, const int32_t* seg, float* out, float* lse) {
  fill(out, int64_t(s.batch) * s.n_local * s.heads * s.head_dim, 0.0);
  fill(lse, int64_t(s.batch) * s.heads * s.n_local, -std::numeric_limits<double>::infinity());
  exec_.backend->attn_fwd_step(device::make_attn_fwd_args(problem(s), {q, pos, seg}, {k, v, pos, seg}, out, lse), {},
                               *exec_.compute);
}

void LocalAttention::backward(int, const model::AttentionShape& s, const float* q, const float* k, const float* v,
                              const int32_t* pos, const int32_t* seg, const float* out, const float* dout,
                              const float* lse, float* dq, float* dk, float* dv) {
  device::Backend& b = *exec_.backend;
  const std::size_t rows = std::size_t(s.batch) * s.heads * s.n_local;
  if (delta_.size() < rows) delta_ = device::DeviceArray<float>(b, rows);
  const float* dout_for_delta = dout;
  if (s.dtype == device::DType::bf16) {  // attn_row_dot takes fp32: widen the bf16 dout
    const int64_t n_out = int64_t(s.batch) * s.n_local * s.heads * s.head_dim;
    if (dout_f32_.size() < static_cast<std::size_t>(n_out))
      dout_f32_ = device::DeviceArray<float>(b, static_cast<std::size_t>(n_out));
    b.convert(device::ConvertArgs{device::view(reinterpret_cast<const device::bf16_t*>(dout), {n_out}),
                                  device::view(dout_f32_.data(), {n_out})},
              *exec_.compute);
    dout_for_delta = dout_f32_.data();
  }
  const device::AttnProblem p = problem(s);
  b.attn_row_dot(device::AttnRowDotArgs{p.shape, out, dout_for_delta, delta_.data()}, *exec_.compute);
  fill(dq, int64_t(s.batch) * s.n_local * s.heads * s.head_dim, 0.0);
  fill(dk, int64_t(s.batch) * s.n_local * s.kv_heads * s.head_dim, 0.0);
  fill(dv, int64_t(s.batch) * s.n_local * s.kv_heads * s.head_dim, 0.0);
  b.attn_bwd_step(device::make_attn_bwd_args(p, {q, pos, seg}, {k, v, pos, seg}, dout, lse, delta_.data(), dq, dk, dv),
                  {}, *exec_.compute);
}

}  // namespace rw::perf
