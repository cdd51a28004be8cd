// model_ops.cpp: see model_ops.h. The model ops moved here unchanged from src/model/ops.cpp
// (same arithmetic, same order: the fp32 results are bit-identical to before).
#include "device/cpu/model_ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace rw::device::cpu {

template <class T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* inv_rms, int64_t rows, int64_t cols, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    double sum_sq = 0;
    for (int64_t c = 0; c < cols; ++c) sum_sq += double(xr[c]) * double(xr[c]);
    const T inv = static_cast<T>(1.0 / std::sqrt(sum_sq / double(cols) + eps));
    inv_rms[r] = inv;
    T* yr = y + r * cols;
    for (int64_t c = 0; c < cols; ++c) yr[c] = xr[c] * inv * w[c];
  }
}

template <class T>
void rmsnorm_backward(const T* x, const T* w, const T* inv_rms, const T* dy, T* dx, T* dw, int64_t rows,
                      int64_t cols) {
  // dx = inv * (g - xhat * mean(g * xhat)), g = dy * w, xhat = x * inv.
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    const double inv = inv_rms[r];
    double dot = 0;
    for (int64_t c = 0; c < cols; ++c) dot += double(dyr[c]) * double(w[c]) * double(xr[c]) * inv;
    const double mean = dot / double(cols);
    T* dxr = dx + r * cols;
    for (int64_t c = 0; c < cols; ++c)
      dxr[c] = static_cast<T>(inv * (double(dyr[c]) * double(w[c]) - double(xr[c]) * inv * mean));
  }
  // dw: columns split over threads, rows summed in order (repeatable bits).
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < cols; ++c) {
    double sum = 0;
    for (int64_t r = 0; r < rows; ++r) sum += double(dy[r * cols + c]) * double(x[r * cols + c]) * double(inv_rms[r]);
    dw[c] += static_cast<T>(sum);
  }
}

namespace {
template <class T>
void rope_rotate(T* x, const int32_t* pos, int64_t tokens, int64_t heads, int64_t head_dim, double theta, double sign) {
  const int64_t half = head_dim / 2;
  std::vector<double> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * double(i) / double(head_dim));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(pos[t]) * inv_freq[i];
      const double c = std::cos(angle), s = sign * std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        T* xh = x + (t * heads + h) * head_dim;
        const double x1 = xh[i], x2 = xh[i + half];
        xh[i] = static_cast<T>(x1 * c - x2 * s);
        xh[i + half] = static_cast<T>(x2 * c + x1 * s);
      }
    }
  }
}
}  // namespace

template <class T>
void rope_forward(T* x, const int32_t* pos, int64_t tokens, int64_t heads, int64_t head_dim, double theta) {
  rope_rotate(x, pos, tokens, heads, head_dim, theta, 1.0);
}

template <class T>
void rope_backward(T* dx, const int32_t* pos, int64_t tokens, int64_t heads, int64_t head_dim, double theta) {
  rope_rotate(dx, pos, tokens, heads, head_dim, theta, -1.0);
}

template <class T>
void swiglu_forward(const T* g, const T* u, T* a, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T sig = T(1) / (T(1) + std::exp(-g[i]));
    a[i] = g[i] * sig * u[i];
  }
}

template <class T>
void swiglu_backward(const T* g, const T* u, const T* da, T* dg, T* du, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T sig = T(1) / (T(1) + std::exp(-g[i]));
    const T silu = g[i] * sig;
    du[i] = da[i] * silu;
    dg[i] = da[i] * u[i] * sig * (T(1) + g[i] * (T(1) - sig));
  }
}

template <class T>
void embedding_forward(const T* table, const int32_t* tokens, T* out, int64_t n_tokens, int64_t hidden) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t c = 0; c < hidden; ++c) out[t * hidden + c] = table[int64_t(tokens[t]) * hidden + c];
}

template <class T>
void embedding_backward(const int32_t* tokens, const T* dout, T* dtable, int64_t n_tokens, int64_t hidden,
                        int64_t vocab) {
  // Columns over threads, tokens in order: no two threads touch one element; repeatable.
  (void)vocab;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < hidden; ++c)
    for (int64_t t = 0; t < n_tokens; ++t) dtable[int64_t(tokens[t]) * hidden + c] += dout[t * hidden + c];
}

template <class T>
double cross_entropy(const T* logits, const int32_t* targets, const float* weights, int64_t n_tokens, int64_t vocab,
                     double grad_scale, T* dlogits, double* token_losses, int64_t text_vocab) {
  std::vector<double> per_token(n_tokens, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n_tokens; ++t) {
    const T* row = logits + t * vocab;
    T* drow = dlogits ? dlogits + t * vocab : nullptr;
    const int32_t target = targets[t];
    if (target < 0 || weights[t] == 0.f) {
      if (drow)
        for (int64_t j = 0; j < vocab; ++j) drow[j] = T(0);
      continue;
    }
    // The target's head: columns [lo, hi) (all of them without a split).
    const bool second_head = text_vocab > 0 && target >= text_vocab;
    const int64_t lo = second_head ? text_vocab : 0, hi = text_vocab > 0 && !second_head ? text_vocab : vocab;
    double mx = double(row[lo]);
    for (int64_t j = lo + 1; j < hi; ++j) mx = std::fmax(mx, double(row[j]));
    double sum = 0;
    for (int64_t j = lo; j < hi; ++j) sum += std::exp(double(row[j]) - mx);
    const double lse = mx + std::log(sum);
    per_token[t] = double(weights[t]) * (lse - double(row[target]));
    if (drow) {
      const double scale = grad_scale * double(weights[t]);
      for (int64_t j = 0; j < lo; ++j) drow[j] = T(0);
      for (int64_t j = lo; j < hi; ++j) drow[j] = static_cast<T>(scale * std::exp(double(row[j]) - lse));
      for (int64_t j = hi; j < vocab; ++j) drow[j] = T(0);
      drow[target] = static_cast<T>(double(drow[target]) - scale);
    }
  }
  double total = 0;
  for (double v : per_token) total += v;  // in token order: repeatable
  if (token_losses) std::copy(per_token.begin(), per_token.end(), token_losses);
  return total;
}

template <class T>
void add(const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

template <class T>
void axpy(T alpha, const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <class T>
void scale(T alpha, T* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

template <class T>
double sum_squares(const T* x, int64_t n, double acc) {
  for (int64_t i = 0; i < n; ++i) acc += double(x[i]) * double(x[i]);
  return acc;
}

template <class T>
double sum(const T* x, int64_t n, double acc) {
  for (int64_t i = 0; i < n; ++i) acc += double(x[i]);
  return acc;
}

template <class T>
void argmax_rows(const T* x, int32_t* index, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * cols;
    int64_t best = 0;
    for (int64_t j = 1; j < cols; ++j)
      if (row[best] < row[j]) best = j;
    index[r] = static_cast<int32_t>(best);
  }
}

// The arithmetic of src/train/optimizer.cpp's adamw_step, element for element (fp64, moments
// stored back in T before the weight update uses the unrounded values).
template <class T>
void adamw_update(T* weights, const T* grads, T* adam_m, T* adam_v, const uint8_t* decay, int64_t n,
                  const AdamWHyper& c) {
  const double bias1 = 1 - std::pow(c.beta1, c.step), bias2 = 1 - std::pow(c.beta2, c.step);
  const double lr = c.lr, grad_multiplier = c.grad_multiplier;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double g = double(grads[i]) * grad_multiplier;
    const double m = c.beta1 * adam_m[i] + (1 - c.beta1) * g;
    const double v = c.beta2 * adam_v[i] + (1 - c.beta2) * g * g;
    adam_m[i] = static_cast<T>(m);
    adam_v[i] = static_cast<T>(v);
    double w = weights[i];
    const double update = (m / bias1) / (std::sqrt(v / bias2) + c.eps) + (decay[i] ? c.weight_decay * w : 0.0);
    weights[i] = static_cast<T>(w - lr * update);
  }
}

#define RW_OPS(T)                                                                                          \
  template void rmsnorm_forward<T>(const T*, const T*, T*, T*, int64_t, int64_t, double);                 \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, const T*, T*, T*, int64_t, int64_t);    \
  template void rope_forward<T>(T*, const int32_t*, int64_t, int64_t, int64_t, double);                    \
  template void rope_backward<T>(T*, const int32_t*, int64_t, int64_t, int64_t, double);                   \
  template void swiglu_forward<T>(const T*, const T*, T*, int64_t);                                         \
  template void swiglu_backward<T>(const T*, const T*, const T*, T*, T*, int64_t);                          \
  template void embedding_forward<T>(const T*, const int32_t*, T*, int64_t, int64_t);                      \
  template void embedding_backward<T>(const int32_t*, const T*, T*, int64_t, int64_t, int64_t);             \
  template double cross_entropy<T>(const T*, const int32_t*, const float*, int64_t, int64_t, double, T*, double*, \
                                   int64_t);                                                                     \
  template void add<T>(const T*, T*, int64_t);                                                              \
  template void axpy<T>(T, const T*, T*, int64_t);                                                          \
  template void scale<T>(T, T*, int64_t);                                                                   \
  template double sum_squares<T>(const T*, int64_t, double);                                                \
  template double sum<T>(const T*, int64_t, double);                                                        \
  template void argmax_rows<T>(const T*, int32_t*, int64_t, int64_t);                                       \
  template void adamw_update<T>(T*, const T*, T*, T*, const uint8_t*, int64_t, const AdamWHyper&);
RW_OPS(float)
RW_OPS(double)
#undef RW_OPS

}  // namespace rw::device::cpu
