// device_model_support.h: what the device model (src/model/transformer.h) needs around it in
// one process, on any backend, for tests: whole parameters in device memory (FsdpParams's role
// without a grid) and attention over the process's own tokens (the ring of one, without MPI),
// both through the backend's kernels on an ExecContext's compute stream.
#pragma once
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "device/attention_builder.h"
#include "device/backend.h"
#include "device/exec_context.h"
#include "src/model/llama_config.h"
#include "src/model/model_interfaces.h"
#include "src/model/param_init.h"
#include "src/train/optimizer.h"

namespace rw::test {

// Whole parameter units, their gradients and AdamW moments in device memory. Records the order
// of gather / prefetch calls ("g3", "p4") so a test can check the model's prefetch contract.
class DeviceLocalParams : public model::ParamSource<float> {
 public:
  // Weights per unit (param_init.h's values for this seed unless given).
  DeviceLocalParams(const device::ExecContext& exec, const model::LlamaConfig& config, uint64_t seed)
      : exec_(exec), units_(model::parameter_units(config)) {
    std::vector<std::vector<float>> w(units_.size());
    for (std::size_t u = 0; u < units_.size(); ++u)
      for (int64_t i = 0; i < units_[u].count; ++i)
        w[u].push_back(static_cast<float>(model::initial_value(seed, static_cast<int>(u), units_[u], i)));
    init(w);
  }
  DeviceLocalParams(const device::ExecContext& exec, const model::LlamaConfig& config,
                    const std::vector<std::vector<float>>& weights)
      : exec_(exec), units_(model::parameter_units(config)) {
    init(weights);
  }

  const float* gather(int unit) override {
    calls.push_back("g" + std::to_string(unit));
    return weights[unit].data();
  }
  void prefetch(int unit) override { calls.push_back("p" + std::to_string(unit)); }
  void release(int) override {}
  void reduce_grad(int unit, const float* grad) override {
    device::AddArgs a;
    a.x = device::view(grad, {units_[unit].count});
    a.y = device::view(grads[unit].data(), {units_[unit].count});
    exec_.backend->add(a, *exec_.compute);
  }
  void zero_grads() {
    for (auto& g : grads) {
      device::FillArgs f;
      f.x = g.view({static_cast<int64_t>(g.size())});
      f.value = 0;
      exec_.backend->fill(f, *exec_.compute);
    }
  }
  std::vector<train::ShardTensors> shards() {
    std::vector<train::ShardTensors> out;
    for (std::size_t u = 0; u < units_.size(); ++u)
      out.push_back({weights[u].data(), grads[u].data(), adam_m[u].data(), adam_v[u].data(), decay[u].data(),
                     units_[u].count});
    return out;
  }
  static std::vector<float> read(const device::DeviceArray<float>& a) {
    std::vector<float> out(a.size());
    a.download(out.data());
    return out;
  }
  const std::vector<model::ParamUnit>& units() const { return units_; }

  std::vector<device::DeviceArray<float>> weights, grads, adam_m, adam_v;
  std::vector<device::DeviceArray<uint8_t>> decay;
  std::vector<std::string> calls;

 private:
  void init(const std::vector<std::vector<float>>& w) {
    device::Backend& b = *exec_.backend;
    for (std::size_t u = 0; u < units_.size(); ++u) {
      const std::size_t n = static_cast<std::size_t>(units_[u].count);
      const std::vector<float> zeros(n, 0.f);
      std::vector<uint8_t> flags(n, 0);
      for (std::size_t t = 0; t < units_[u].tensors.size(); ++t)
        for (int64_t i = 0; i < units_[u].tensors[t].count(); ++i)
          flags[units_[u].offsets[t] + i] = units_[u].tensors[t].is_norm ? 0 : 1;
      weights.emplace_back(b, n);
      grads.emplace_back(b, n);
      adam_m.emplace_back(b, n);
      adam_v.emplace_back(b, n);
      decay.emplace_back(b, n);
      weights.back().upload(w[u].data());
      grads.back().upload(zeros.data());
      adam_m.back().upload(zeros.data());
      adam_v.back().upload(zeros.data());
      decay.back().upload(flags.data());
    }
  }
  device::ExecContext exec_;
  std::vector<model::ParamUnit> units_;
};

// Exact attention over this process's tokens through the backend's tile kernels: one ring step
// of the process with itself (what RingAttentionOp computes on a ring of one rank, without the
// transfers). Its delta buffer is allocated once and grows only with the shape.
class LocalAttentionOp : public model::AttentionOp<float> {
 public:
  LocalAttentionOp(const device::ExecContext& exec, bool causal, device::AttnTiling tiling)
      : exec_(exec), causal_(causal), tiling_(tiling) {}
  bool takes(device::DType dtype) const override {
    return dtype == device::DType::f32 || dtype == device::DType::bf16;
  }
  void forward(int, const model::AttentionShape& s, const float* q, const float* k, const float* v,
               const int32_t* pos, const int32_t* seg, float* out, float* lse) override {
    const device::AttnProblem p = problem(s);
    fill(out, int64_t(s.batch) * s.n_local * s.heads * s.head_dim, 0.0);
    fill(lse, int64_t(s.batch) * s.heads * s.n_local, -std::numeric_limits<double>::infinity());
    exec_.backend->attn_fwd_step(device::make_attn_fwd_args(p, {q, pos, seg}, {k, v, pos, seg}, out, lse), {},
                                 *exec_.compute);
  }
  void backward(int, const model::AttentionShape& s, const float* q, const float* k, const float* v,
                const int32_t* pos, const int32_t* seg, const float* out, const float* dout, const float* lse,
                float* dq, float* dk, float* dv) override {
    const device::AttnProblem p = problem(s);
    const std::size_t rows = std::size_t(s.batch) * s.heads * s.n_local;
    if (delta_.size() < rows) delta_ = device::DeviceArray<float>(*exec_.backend, rows);
    const float* dout_for_delta = dout;
    if (s.dtype == device::DType::bf16) {  // attn_row_dot takes fp32: widen the bf16 dout
      const int64_t n_out = int64_t(s.batch) * s.n_local * s.heads * s.head_dim;
      if (dout_f32_.size() < static_cast<std::size_t>(n_out))
        dout_f32_ = device::DeviceArray<float>(*exec_.backend, static_cast<std::size_t>(n_out));
      exec_.backend->convert(device::ConvertArgs{device::view(reinterpret_cast<const device::bf16_t*>(dout), {n_out}),
                                                 device::view(dout_f32_.data(), {n_out})},
                             *exec_.compute);
      dout_for_delta = dout_f32_.data();
    }
    exec_.backend->attn_row_dot(device::AttnRowDotArgs{p.shape, out, dout_for_delta, delta_.data()}, *exec_.compute);
    fill(dq, int64_t(s.batch) * s.n_local * s.heads * s.head_dim, 0.0);
    fill(dk, int64_t(s.batch) * s.n_local * s.kv_heads * s.head_dim, 0.0);
    fill(dv, int64_t(s.batch) * s.n_local * s.kv_heads * s.head_dim, 0.0);
    exec_.backend->attn_bwd_step(
        device::make_attn_bwd_args(p, {q, pos, seg}, {k, v, pos, seg}, dout, lse, delta_.data(), dq, dk, dv), {},
        *exec_.compute);
  }

 private:
  device::AttnProblem problem(const model::AttentionShape& s) const {
    device::AttnProblem p;
    p.shape = {s.batch, s.n_local, s.n_local, s.heads, s.kv_heads, s.head_dim};
    p.causal = causal_;
    p.tiling = tiling_;
    p.dtype = s.dtype;  // q, k, v, dout: bf16 data in the model's bf16 mode
    return p;
  }
  void fill(float* x, int64_t n, double value) {
    device::FillArgs f;
    f.x = device::view(x, {n});
    f.value = value;
    exec_.backend->fill(f, *exec_.compute);
  }
  device::ExecContext exec_;
  bool causal_;
  device::AttnTiling tiling_;
  device::DeviceArray<float> delta_, dout_f32_;
};

}  // namespace rw::test
