// model_ops.h: the host implementations of the model's and the optimizer's elementwise and
// row-wise ops: the CPU backend's kernels (cpu_kernels.cpp calls them in fp32) and, in fp64,
// the reference the tests compare every backend with (and the fp64 model's ops, through
// src/model/ops.h). Templated on the element type (instantiated for float and double), on
// row-major host arrays. Row-parallel with OpenMP; every reduction over rows (weight
// gradients) or over a whole tensor runs in a fixed order, so results are bit-identical run to
// run and independent of the thread count.
//
//   rmsnorm   y = x / sqrt(mean(x^2) + eps) * w                         (per row)
//   rope      rotate-half: out1 = x1 cos - x2 sin, out2 = x2 cos + x1 sin, angle_i = pos *
//             theta^(-2i/head_dim), i < head_dim/2, x1/x2 the two halves of each head
//   swiglu    a = silu(g) * u, silu(g) = g * sigmoid(g)
//   embedding out[t] = table[token[t]]
//   cross entropy: sum over tokens with target >= 0 of w * (logsumexp(logits) - logits[target])
//   adamw     decoupled weight decay (src/train/optimizer.h), fp64 arithmetic per element
#pragma once
#include <cstdint>

namespace rw::device::cpu {

template <class T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* inv_rms, int64_t rows, int64_t cols, double eps);

// dx = (dL/dy through the norm); dw += sum over rows. inv_rms from the forward.
template <class T>
void rmsnorm_backward(const T* x, const T* w, const T* inv_rms, const T* dy, T* dx, T* dw, int64_t rows,
                      int64_t cols);

// In place on x [tokens, heads, head_dim]; pos [tokens].
template <class T>
void rope_forward(T* x, const int32_t* pos, int64_t tokens, int64_t heads, int64_t head_dim, double theta);
// In place on dx: the transpose (inverse) rotation.
template <class T>
void rope_backward(T* dx, const int32_t* pos, int64_t tokens, int64_t heads, int64_t head_dim, double theta);

template <class T>
void swiglu_forward(const T* g, const T* u, T* a, int64_t n);
template <class T>
void swiglu_backward(const T* g, const T* u, const T* da, T* dg, T* du, int64_t n);

template <class T>
void embedding_forward(const T* table, const int32_t* tokens, T* out, int64_t n_tokens, int64_t hidden);
// dtable += scatter of dout rows by token.
template <class T>
void embedding_backward(const int32_t* tokens, const T* dout, T* dtable, int64_t n_tokens, int64_t hidden,
                        int64_t vocab);

// Returns sum over tokens (target >= 0) of weight * CE. If dlogits is not null it receives
// grad_scale * weight * (softmax - onehot(target)) (zero rows for ignored tokens); if
// token_losses is not null, each token's term (0 for ignored tokens). text_vocab > 0: each row's
// softmax is over its target's head only ([text_vocab, vocab) for targets >= text_vocab, else
// [0, text_vocab)), dlogits zero outside it (CrossEntropyArgs).
template <class T>
double cross_entropy(const T* logits, const int32_t* targets, const float* weights, int64_t n_tokens, int64_t vocab,
                     double grad_scale, T* dlogits, double* token_losses = nullptr, int64_t text_vocab = 0);

// y += x; y += alpha x; x *= alpha (elementwise).
template <class T>
void add(const T* x, T* y, int64_t n);
template <class T>
void axpy(T alpha, const T* x, T* y, int64_t n);
template <class T>
void scale(T alpha, T* x, int64_t n);

// acc + sum x[i]^2 and acc + sum x[i], in fp64, in index order (one thread: repeatable bits).
template <class T>
double sum_squares(const T* x, int64_t n, double acc);
template <class T>
double sum(const T* x, int64_t n, double acc);

// index[r] = first j with x[r, j] maximal (as std::max_element), rows in parallel.
template <class T>
void argmax_rows(const T* x, int32_t* index, int64_t rows, int64_t cols);

struct AdamWHyper {
  double lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_multiplier = 1.0;
  int step = 1;  // 1-based
};

// One AdamW update of n elements (decay[i] != 0: apply weight decay to element i).
template <class T>
void adamw_update(T* weights, const T* grads, T* adam_m, T* adam_v, const uint8_t* decay, int64_t n,
                  const AdamWHyper& h);

}  // namespace rw::device::cpu
