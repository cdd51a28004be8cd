// elementwise.cu: fill, add, axpy, scale, convert, RoPE, SwiGLU, embedding forward, AdamW.
// One thread per element (grid-stride), fp32 arithmetic on f32/bf16 storage (common.cuh),
// except where the contract says otherwise: AdamW and the RoPE angles in fp64, as the CPU
// (device/cpu/model_ops.cpp) computes them.
#include <cmath>

#include "device/cuda/kernels/common.cuh"

namespace rw::device::gpu::RW_GPU_NS {
namespace {

template <class T>
__global__ void fill_kernel(T* x, int64_t n, T value) {
  for (int64_t i = global_thread_x(); i < n; i += grid_threads_x()) x[i] = value;
}

template <class T>
void launch_fill(void* x, int64_t n, T value, const LaunchContext& ctx) {
  launch_kernel(&fill_kernel<T>, dim3(grid_for(n, kThreads * 4)), dim3(kThreads), 0, ctx, static_cast<T*>(x), n, value);
}

// y = y + alpha * x (add: alpha = 1 with no multiply, so the sum is rounded once as on the CPU).
__global__ void add_kernel(FpIn x, FpOut y, int64_t n, float alpha, int use_alpha) {
  for (int64_t i = global_thread_x(); i < n; i += grid_threads_x()) {
    const float xi = x[i];
    y.store(i, use_alpha ? y.load(i) + alpha * xi : y.load(i) + xi);
  }
}

__global__ void scale_kernel(FpOut x, int64_t n, float alpha) {
  for (int64_t i = global_thread_x(); i < n; i += grid_threads_x()) x.store(i, x.load(i) * alpha);
}

__global__ void convert_kernel(FpIn x, FpOut y, int64_t n) {
  for (int64_t i = global_thread_x(); i < n; i += grid_threads_x()) y.store(i, x[i]);
}

template <class T>
__global__ void copy_kernel(const T* x, T* y, int64_t n) {
  for (int64_t i = global_thread_x(); i < n; i += grid_threads_x()) y[i] = x[i];
}

// One thread per (token, frequency i < head_dim/2), looping over heads: the angle pos *
// theta^(-2i/d) = pos * exp(-2i/d * log theta) and its cosine and sine in fp64 (as the CPU;
// log theta from the host), the rotation in fp32.
__global__ void rope_kernel(FpOut x, const int32_t* pos, int64_t tokens, int64_t heads, int64_t head_dim,
                            double log_theta, double sign) {
  const int64_t half = head_dim / 2;
  for (int64_t idx = global_thread_x(); idx < tokens * half; idx += grid_threads_x()) {
    const int64_t t = idx / half, i = idx % half;
    const double angle =
        static_cast<double>(pos[t]) * exp(-2.0 * static_cast<double>(i) / static_cast<double>(head_dim) * log_theta);
    double sin_angle, cos_angle;
    sincos(angle, &sin_angle, &cos_angle);
    const float c = static_cast<float>(cos_angle), s = static_cast<float>(sign * sin_angle);
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t base = (t * heads + h) * head_dim;
      const float x1 = x.load(base + i), x2 = x.load(base + i + half);
      x.store(base + i, x1 * c - x2 * s);
      x.store(base + i + half, x2 * c + x1 * s);
    }
  }
}

__device__ __forceinline__ float sigmoid(float g) { return 1.f / (1.f + expf(-g)); }

__global__ void swiglu_fwd_kernel(FpIn g, FpIn u, FpOut a, int64_t n) {
  for (int64_t i = global_thread_x(); i < n; i += grid_threads_x()) {
    const float gi = g[i];
    a.store(i, gi * sigmoid(gi) * u[i]);
  }
}

__global__ void swiglu_bwd_kernel(FpIn g, FpIn u, FpIn da, FpOut dg, FpOut du, int64_t n) {
  for (int64_t i = global_thread_x(); i < n; i += grid_threads_x()) {
    const float gi = g[i], sig = sigmoid(gi), dai = da[i];
    du.store(i, dai * (gi * sig));
    dg.store(i, dai * u[i] * sig * (1.f + gi * (1.f - sig)));
  }
}

__global__ void embedding_fwd_kernel(FpIn table, const int32_t* tokens, FpOut out, int64_t n_tokens, int64_t hidden) {
  for (int64_t idx = global_thread_x(); idx < n_tokens * hidden; idx += grid_threads_x()) {
    const int64_t t = idx / hidden, c = idx % hidden;
    out.store(idx, table[static_cast<int64_t>(tokens[t]) * hidden + c]);
  }
}

// AdamW per element in fp64 (src/train/optimizer.cpp's arithmetic; bias corrections from the host).
__global__ void adamw_kernel(float* weights, FpIn grads, float* adam_m, float* adam_v, const uint8_t* decay, int64_t n,
                             double lr, double beta1, double beta2, double eps, double weight_decay,
                             double grad_multiplier, double bias1, double bias2) {
  for (int64_t i = global_thread_x(); i < n; i += grid_threads_x()) {
    const double g = static_cast<double>(grads[i]) * grad_multiplier;
    const double m = beta1 * static_cast<double>(adam_m[i]) + (1 - beta1) * g;
    const double v = beta2 * static_cast<double>(adam_v[i]) + (1 - beta2) * g * g;
    adam_m[i] = static_cast<float>(m);
    adam_v[i] = static_cast<float>(v);
    const double w = weights[i];
    const double update = (m / bias1) / (sqrt(v / bias2) + eps) + (decay[i] ? weight_decay * w : 0.0);
    weights[i] = static_cast<float>(w - lr * update);
  }
}

dim3 elementwise_grid(int64_t n) { return dim3(grid_for(n, kThreads * 4)); }

}  // namespace

void run(FillArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.x.n_elements();
  switch (a.x.dtype) {
    case DType::f32: launch_fill<float>(a.x.data, n, static_cast<float>(a.value), ctx); break;
    case DType::bf16: launch_fill<bf16_t>(a.x.data, n, from_float<bf16_t>(static_cast<float>(a.value)), ctx); break;
    case DType::f64: launch_fill<double>(a.x.data, n, a.value, ctx); break;
    case DType::i32: launch_fill<int32_t>(a.x.data, n, static_cast<int32_t>(a.value), ctx); break;
    case DType::u8: launch_fill<uint8_t>(a.x.data, n, static_cast<uint8_t>(a.value), ctx); break;
  }
}

void fill_f32(float* x, int64_t n, float value, const LaunchContext& ctx) { launch_fill<float>(x, n, value, ctx); }

void run(AddArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.y.n_elements();
  launch_kernel(&add_kernel, elementwise_grid(n), dim3(kThreads), 0, ctx, fp_in(a.x), fp_out(a.y), n, 1.f, 0);
}

void run(AxpyArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.y.n_elements();
  launch_kernel(&add_kernel, elementwise_grid(n), dim3(kThreads), 0, ctx, fp_in(a.x), fp_out(a.y), n, a.alpha, 1);
}

void run(ScaleArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.x.n_elements();
  launch_kernel(&scale_kernel, elementwise_grid(n), dim3(kThreads), 0, ctx, fp_out(a.x), n, a.alpha);
}

void run(ConvertArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.x.n_elements();
  if (a.x.dtype == a.y.dtype) {  // a copy, bit for bit
    if (a.x.dtype == DType::bf16)
      launch_kernel(&copy_kernel<bf16_t>, elementwise_grid(n), dim3(kThreads), 0, ctx, a.x.as<bf16_t>(),
                    a.y.as<bf16_t>(), n);
    else
      launch_kernel(&copy_kernel<float>, elementwise_grid(n), dim3(kThreads), 0, ctx, a.x.as<float>(), a.y.as<float>(),
                    n);
    return;
  }
  launch_kernel(&convert_kernel, elementwise_grid(n), dim3(kThreads), 0, ctx, fp_in(a.x), fp_out(a.y), n);
}

void convert_to_f32(const void* x, DType dtype, float* y, int64_t n, const LaunchContext& ctx) {
  launch_kernel(&convert_kernel, elementwise_grid(n), dim3(kThreads), 0, ctx, FpIn{x, dtype == DType::bf16},
                FpOut{y, 0}, n);
}

void run(RopeFwdArgs& a, const LaunchContext& ctx) {
  const int64_t tokens = a.x.shape[0], heads = a.x.shape[1], d = a.x.shape[2];
  launch_kernel(&rope_kernel, elementwise_grid(tokens * (d / 2)), dim3(kThreads), 0, ctx, fp_out(a.x),
                a.pos.as<int32_t>(), tokens, heads, d, std::log(a.theta), 1.0);
}

void run(RopeBwdArgs& a, const LaunchContext& ctx) {
  const int64_t tokens = a.x.shape[0], heads = a.x.shape[1], d = a.x.shape[2];
  launch_kernel(&rope_kernel, elementwise_grid(tokens * (d / 2)), dim3(kThreads), 0, ctx, fp_out(a.x),
                a.pos.as<int32_t>(), tokens, heads, d, std::log(a.theta), -1.0);
}

void run(SwigluFwdArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.g.n_elements();
  launch_kernel(&swiglu_fwd_kernel, elementwise_grid(n), dim3(kThreads), 0, ctx, fp_in(a.g), fp_in(a.u), fp_out(a.a),
                n);
}

void run(SwigluBwdArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.g.n_elements();
  launch_kernel(&swiglu_bwd_kernel, elementwise_grid(n), dim3(kThreads), 0, ctx, fp_in(a.g), fp_in(a.u), fp_in(a.da),
                fp_out(a.dg), fp_out(a.du), n);
}

void run(EmbeddingFwdArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.tokens.shape[0], hidden = a.table.shape[1];
  launch_kernel(&embedding_fwd_kernel, elementwise_grid(n * hidden), dim3(kThreads), 0, ctx, fp_in(a.table),
                a.tokens.as<int32_t>(), fp_out(a.out), n, hidden);
}

void run(AdamWArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.weights.shape[0];
  const double bias1 = 1 - std::pow(a.beta1, a.step), bias2 = 1 - std::pow(a.beta2, a.step);
  launch_kernel(&adamw_kernel, elementwise_grid(n), dim3(kThreads), 0, ctx, a.weights.as<float>(), fp_in(a.grads),
                a.m.as<float>(), a.v.as<float>(), a.decay.as<uint8_t>(), n, a.lr, a.beta1, a.beta2, a.eps,
                a.weight_decay, a.grad_multiplier, bias1, bias2);
}

}  // namespace rw::device::gpu::RW_GPU_NS
