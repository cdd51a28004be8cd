// local_model.h: what the device model (src/model/transformer.h) needs around it on one device
// in one process, for the GPU benchmarks (perf/gpu/gpu_train_bench.cpp), without MPI, HDF5 or
// Boost (the GPU machine's standalone build, perf/gpu/standalone/):
//   LocalDeviceParams   whole parameter units in device memory: fp32 master weights, gradients
//                       (accumulated by reduce_grad), AdamW moments and weight-decay flags, and
//                       with bf16 a bf16 working copy refreshed by a convert kernel after each
//                       update (FsdpParams's bf16 gather, on one rank: gathers_bf16());
//                       the AdamW update and the gradient norm by the backend's kernels (the
//                       arithmetic of src/train/optimizer.h, called directly: that file's
//                       collective half needs MPI)
//   LocalAttention      exact attention over the process's whole sequence with the backend's
//                       kernels (a ring of one rank, no transfers), its tiles from the backend's
//                       hint for the shape (make_attn_problem)
// Everything is enqueued on the ExecContext's compute stream (device/exec_context.h).
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "device/attention_builder.h"
#include "device/backend.h"
#include "device/device_scalar.h"
#include "device/exec_context.h"
#include "src/model/llama_config.h"
#include "src/model/model_interfaces.h"

namespace rw::perf {

class LocalDeviceParams : public model::ParamSource<float> {
 public:
  // host_weights[u]: unit u's values (parameter_units(config) layout).
  LocalDeviceParams(const device::ExecContext& exec, const model::LlamaConfig& config, bool bf16_copy,
                    const std::vector<std::vector<float>>& host_weights);
  // Units filled by fill_unit(u, host buffer of the unit's size) one at a time (large models:
  // one host unit at a time).
  template <class Fill>
  LocalDeviceParams(const device::ExecContext& exec, const model::LlamaConfig& config, bool bf16_copy, Fill fill_unit)
      : LocalDeviceParams(exec, config, bf16_copy) {
    std::vector<float> host;
    for (std::size_t u = 0; u < units_.size(); ++u) {
      host.resize(static_cast<std::size_t>(units_[u].count));
      fill_unit(static_cast<int>(u), host);
      upload(static_cast<int>(u), host);
    }
  }

  const float* gather(int unit) override { return weights_[unit].data(); }
  void release(int) override {}
  bool gathers_bf16() const override { return bf16_; }
  const device::bf16_t* gather_bf16(int unit) override { return bf16_ ? weights16_[unit].data() : nullptr; }
  void reduce_grad(int unit, const float* grad) override;

  void zero_grads();
  // sum of every gradient squared (fp64; one value read back: a sync point).
  double grad_sum_squares();
  // AdamW (beta 0.9/0.95, eps 1e-8, weight decay 0.1 except norms) at step t, gradients scaled
  // by grad_multiplier; then the bf16 copy refreshed. Enqueued only.
  void adamw_step(double lr, int t, double grad_multiplier);
  std::vector<float> download_grad(int unit) const;
  const std::vector<model::ParamUnit>& units() const { return units_; }
  int64_t parameter_count() const;
  std::size_t device_bytes() const;

 private:
  LocalDeviceParams(const device::ExecContext& exec, const model::LlamaConfig& config, bool bf16_copy);
  void upload(int unit, const std::vector<float>& host);
  void refresh_bf16(int unit);

  device::ExecContext exec_;
  std::vector<model::ParamUnit> units_;
  bool bf16_;
  std::vector<device::DeviceArray<float>> weights_, grads_, adam_m_, adam_v_;
  std::vector<device::DeviceArray<uint8_t>> decay_;
  std::vector<device::DeviceArray<device::bf16_t>> weights16_;
  device::DeviceScalar scalar_;
};

class LocalAttention : public model::AttentionOp<float> {
 public:
  LocalAttention(const device::ExecContext& exec, bool causal) : exec_(exec), causal_(causal) {}
  bool takes(device::DType dtype) const override {
    return dtype == device::DType::f32 || dtype == device::DType::bf16;
  }
  void forward(int layer, const model::AttentionShape& s, const float* q, const float* k, const float* v,
               const int32_t* pos, const int32_t* seg, float* out, float* lse) override;
  void backward(int layer, const model::AttentionShape& s, const float* q, const float* k, const float* v,
                const int32_t* pos, const int32_t* seg, const float* out, const float* dout, const float* lse,
                float* dq, float* dk, float* dv) override;

 private:
  device::AttnProblem problem(const model::AttentionShape& s) const;
  void fill(float* x, int64_t n, double value);
  device::ExecContext exec_;
  bool causal_;
  device::DeviceArray<float> delta_, dout_f32_;
};

}  // namespace rw::perf
