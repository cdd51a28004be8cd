// reference_transformer.cpp: see reference_transformer.h. Notation: N rows (local tokens of all local sequences),
// H hidden, KV = kv_heads * head_dim, I intermediate, V vocab. Weights [out, in] as Hugging
// Face stores them, so a projection is y = x W^T.
#include "src/model/reference_transformer.h"

#include <algorithm>

#include "src/common/activity.h"
#include "src/common/fatal.h"
#include "src/model/ops.h"

namespace rw::model {

template <class T>
struct ReferenceTransformer<T>::Saved {
  std::vector<T> x_in;      // layer input [N, H]
  std::vector<T> attn_out;  // attention output before o_proj [N, H]
  std::vector<T> lse;       // [batch, heads, n_local]
};

template <class T>
ReferenceTransformer<T>::ReferenceTransformer(const LlamaConfig& config, ParamSource<T>& params, AttentionOp<T>& attention,
                            MatMul<T>& matmul, TransformerOptions options)
    : config_(config), units_(parameter_units(config)), params_(params), attention_(attention), matmul_(matmul),
      options_(options) {
  config_.validate();
  RW_CHECK(options_.ffn_chunk_tokens > 0 && options_.loss_chunk_tokens > 0, "chunk sizes must be positive");
}

template <class T>
void ReferenceTransformer<T>::project_qkv(const T* w, const data::LocalBatch& batch, const std::vector<T>& x,
                                 std::vector<T>& n1, std::vector<T>& inv1, std::vector<T>& q, std::vector<T>& k,
                                 std::vector<T>& v) {
  const int64_t n = batch.token_count(), h = config_.hidden_size, kv = config_.kv_width();
  const auto& off = units_[1].offsets;
  n1.resize(n * h);
  inv1.resize(n);
  q.resize(n * h);
  k.resize(n * kv);
  v.resize(n * kv);
  rmsnorm_forward(x.data(), w + off[kInputNorm], n1.data(), inv1.data(), n, h, config_.rms_norm_eps);
  matmul_(false, true, n, h, h, T(1), n1.data(), h, w + off[kQProj], h, T(0), q.data(), h);
  matmul_(false, true, n, kv, h, T(1), n1.data(), h, w + off[kKProj], h, T(0), k.data(), kv);
  matmul_(false, true, n, kv, h, T(1), n1.data(), h, w + off[kVProj], h, T(0), v.data(), kv);
  rope_forward(q.data(), batch.positions.data(), n, config_.num_attention_heads, config_.head_dim(), config_.rope_theta);
  rope_forward(k.data(), batch.positions.data(), n, config_.num_key_value_heads, config_.head_dim(), config_.rope_theta);
}

template <class T>
void ReferenceTransformer<T>::layer_forward(int layer, const T* w, const data::LocalBatch& batch, std::vector<T>& x,
                                   Saved* saved) {
  const int64_t n = batch.token_count(), h = config_.hidden_size, inter = config_.intermediate_size;
  const auto& off = units_[1].offsets;
  if (saved) saved->x_in = x;
  std::vector<T> n1, inv1, q, k, v;
  project_qkv(w, batch, x, n1, inv1, q, k, v);
  const AttentionShape shape{batch.n_sequences, batch.n_local, static_cast<int>(config_.num_attention_heads),
                             static_cast<int>(config_.num_key_value_heads), static_cast<int>(config_.head_dim())};
  std::vector<T> o(n * h), lse(static_cast<std::size_t>(batch.n_sequences) * shape.heads * batch.n_local);
  attention_.forward(layer, shape, q.data(), k.data(), v.data(), batch.positions.data(), batch.segment_ids.data(),
                     o.data(), lse.data());
  matmul_(false, true, n, h, h, T(1), o.data(), h, w + off[kOProj], h, T(1), x.data(), h);  // x2 = x + o Wo^T
  if (saved) {
    saved->attn_out = std::move(o);
    saved->lse = std::move(lse);
  }
  // Blockwise FFN: x3 = x2 + down(silu(gate(n2)) * up(n2)) a chunk of rows at a time.
  const int64_t chunk = std::min<int64_t>(options_.ffn_chunk_tokens, n);
  std::vector<T> n2(chunk * h), inv2(chunk), g(chunk * inter), u(chunk * inter), a(chunk * inter);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    T* xc = x.data() + r0 * h;
    rmsnorm_forward(xc, w + off[kPostNorm], n2.data(), inv2.data(), rows, h, config_.rms_norm_eps);
    matmul_(false, true, rows, inter, h, T(1), n2.data(), h, w + off[kGateProj], h, T(0), g.data(), inter);
    matmul_(false, true, rows, inter, h, T(1), n2.data(), h, w + off[kUpProj], h, T(0), u.data(), inter);
    swiglu_forward(g.data(), u.data(), a.data(), rows * inter);
    matmul_(false, true, rows, h, inter, T(1), a.data(), inter, w + off[kDownProj], inter, T(1), xc, h);
  }
}

template <class T>
void ReferenceTransformer<T>::layer_backward(int layer, const T* w, T* grad, const data::LocalBatch& batch,
                                    const Saved& saved, std::vector<T>& dx) {
  const int64_t n = batch.token_count(), h = config_.hidden_size, kv = config_.kv_width(),
                inter = config_.intermediate_size;
  const auto& off = units_[1].offsets;
  // Recompute the layer's forward up to the FFN input (attention output is saved).
  std::vector<T> n1, inv1, q, k, v;
  project_qkv(w, batch, saved.x_in, n1, inv1, q, k, v);
  std::vector<T> x2 = saved.x_in;
  matmul_(false, true, n, h, h, T(1), saved.attn_out.data(), h, w + off[kOProj], h, T(1), x2.data(), h);

  // FFN backward, chunk by chunk; dx holds dL/dx3 on entry and becomes dL/dx2.
  const int64_t chunk = std::min<int64_t>(options_.ffn_chunk_tokens, n);
  std::vector<T> n2(chunk * h), inv2(chunk), g(chunk * inter), u(chunk * inter), a(chunk * inter),
      da(chunk * inter), dg(chunk * inter), du(chunk * inter), dn2(chunk * h), dnorm(chunk * h);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    const T* x2c = x2.data() + r0 * h;
    T* dxc = dx.data() + r0 * h;
    rmsnorm_forward(x2c, w + off[kPostNorm], n2.data(), inv2.data(), rows, h, config_.rms_norm_eps);
    matmul_(false, true, rows, inter, h, T(1), n2.data(), h, w + off[kGateProj], h, T(0), g.data(), inter);
    matmul_(false, true, rows, inter, h, T(1), n2.data(), h, w + off[kUpProj], h, T(0), u.data(), inter);
    swiglu_forward(g.data(), u.data(), a.data(), rows * inter);
    matmul_(true, false, h, inter, rows, T(1), dxc, h, a.data(), inter, T(1), grad + off[kDownProj], inter);
    matmul_(false, false, rows, inter, h, T(1), dxc, h, w + off[kDownProj], inter, T(0), da.data(), inter);
    swiglu_backward(g.data(), u.data(), da.data(), dg.data(), du.data(), rows * inter);
    matmul_(false, false, rows, h, inter, T(1), dg.data(), inter, w + off[kGateProj], h, T(0), dn2.data(), h);
    matmul_(false, false, rows, h, inter, T(1), du.data(), inter, w + off[kUpProj], h, T(1), dn2.data(), h);
    matmul_(true, false, inter, h, rows, T(1), dg.data(), inter, n2.data(), h, T(1), grad + off[kGateProj], h);
    matmul_(true, false, inter, h, rows, T(1), du.data(), inter, n2.data(), h, T(1), grad + off[kUpProj], h);
    rmsnorm_backward(x2c, w + off[kPostNorm], inv2.data(), dn2.data(), dnorm.data(), grad + off[kPostNorm], rows, h);
    for (int64_t i = 0; i < rows * h; ++i) dxc[i] += dnorm[i];
  }
  // Free (not just clear: `v = {}` keeps the capacity) the FFN chunk buffers before the
  // attention backward, the layer's peak.
  for (std::vector<T>* buffer : {&n2, &g, &u, &a, &da, &dg, &du}) std::vector<T>().swap(*buffer);

  // Attention block.
  std::vector<T> dout(n * h);
  matmul_(false, false, n, h, h, T(1), dx.data(), h, w + off[kOProj], h, T(0), dout.data(), h);
  matmul_(true, false, h, h, n, T(1), dx.data(), h, saved.attn_out.data(), h, T(1), grad + off[kOProj], h);
  const AttentionShape shape{batch.n_sequences, batch.n_local, static_cast<int>(config_.num_attention_heads),
                             static_cast<int>(config_.num_key_value_heads), static_cast<int>(config_.head_dim())};
  std::vector<T> dq(n * h), dk(n * kv), dv(n * kv);
  attention_.backward(layer, shape, q.data(), k.data(), v.data(), batch.positions.data(), batch.segment_ids.data(),
                      saved.attn_out.data(), dout.data(), saved.lse.data(), dq.data(), dk.data(), dv.data());
  rope_backward(dq.data(), batch.positions.data(), n, config_.num_attention_heads, config_.head_dim(), config_.rope_theta);
  rope_backward(dk.data(), batch.positions.data(), n, config_.num_key_value_heads, config_.head_dim(), config_.rope_theta);
  matmul_(true, false, h, h, n, T(1), dq.data(), h, n1.data(), h, T(1), grad + off[kQProj], h);
  matmul_(true, false, kv, h, n, T(1), dk.data(), kv, n1.data(), h, T(1), grad + off[kKProj], h);
  matmul_(true, false, kv, h, n, T(1), dv.data(), kv, n1.data(), h, T(1), grad + off[kVProj], h);
  std::vector<T> dn1(n * h);
  matmul_(false, false, n, h, h, T(1), dq.data(), h, w + off[kQProj], h, T(0), dn1.data(), h);
  matmul_(false, false, n, h, kv, T(1), dk.data(), kv, w + off[kKProj], h, T(1), dn1.data(), h);
  matmul_(false, false, n, h, kv, T(1), dv.data(), kv, w + off[kVProj], h, T(1), dn1.data(), h);
  std::vector<T> dnorm1(n * h);
  rmsnorm_backward(saved.x_in.data(), w + off[kInputNorm], inv1.data(), dn1.data(), dnorm1.data(),
                   grad + off[kInputNorm], n, h);
  for (int64_t i = 0; i < n * h; ++i) dx[i] += dnorm1[i];
}

template <class T>
double ReferenceTransformer<T>::head(const T* w, T* grad, const data::LocalBatch& batch, const std::vector<T>& x, T* logits,
                            double grad_scale, std::vector<T>* dx, double* token_losses) {
  const int64_t n = batch.token_count(), h = config_.hidden_size, vocab = config_.total_vocab_size();
  const int64_t split = config_.loss_split_column();  // a vision model: the target picks the head
  const auto& off = units_.back().offsets;
  const T* w_norm = w + off[0];
  const T* w_lm = w + off[1];
  const int64_t chunk = std::min<int64_t>(options_.loss_chunk_tokens, n);
  std::vector<T> nf(chunk * h), inv(chunk), lg(chunk * vocab), dl, dnf;
  if (dx) {
    dx->assign(n * h, T(0));
    dl.resize(chunk * vocab);
    dnf.resize(chunk * h);
  }
  double loss = 0;
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    rmsnorm_forward(x.data() + r0 * h, w_norm, nf.data(), inv.data(), rows, h, config_.rms_norm_eps);
    matmul_(false, true, rows, vocab, h, T(1), nf.data(), h, w_lm, h, T(0), lg.data(), vocab);
    if (logits) std::copy(lg.begin(), lg.begin() + rows * vocab, logits + r0 * vocab);
    if (token_losses) {  // forward only: each token's loss (validation by position)
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r)
        token_losses[r0 + r] = cross_entropy(lg.data() + r * vocab, batch.targets.data() + r0 + r,
                                             batch.loss_weights.data() + r0 + r, int64_t(1), vocab, 0.0,
                                             static_cast<T*>(nullptr), nullptr, split);
      for (int64_t r = 0; r < rows; ++r) loss += token_losses[r0 + r];
      continue;
    }
    loss += cross_entropy(lg.data(), batch.targets.data() + r0, batch.loss_weights.data() + r0, rows, vocab,
                          grad_scale, dx ? dl.data() : static_cast<T*>(nullptr), nullptr, split);
    if (!dx) continue;
    matmul_(true, false, vocab, h, rows, T(1), dl.data(), vocab, nf.data(), h, T(1), grad + off[1], h);
    matmul_(false, false, rows, h, vocab, T(1), dl.data(), vocab, w_lm, h, T(0), dnf.data(), h);
    rmsnorm_backward(x.data() + r0 * h, w_norm, inv.data(), dnf.data(), dx->data() + r0 * h, grad + off[0], rows, h);
  }
  return loss;
}

template <class T>
double ReferenceTransformer<T>::forward(const data::LocalBatch& batch, T* logits, double* token_losses) {
  const int64_t n = batch.token_count(), h = config_.hidden_size;
  const int n_layers = static_cast<int>(config_.num_hidden_layers);
  std::vector<T> x(n * h);
  const T* w = params_.gather(0);
  embedding_forward(w, batch.tokens.data(), x.data(), n, h);
  params_.release(0);
  for (int l = 0; l < n_layers; ++l) {
    activity::set_layer(l, "forward");
    w = params_.gather(l + 1);
    layer_forward(l, w, batch, x, nullptr);
    params_.release(l + 1);
  }
  activity::set_layer(-1, "lm head and loss");
  w = params_.gather(n_layers + 1);
  const double loss = head(w, nullptr, batch, x, logits, 0.0, nullptr, token_losses);
  params_.release(n_layers + 1);
  return loss;
}

template <class T>
double ReferenceTransformer<T>::forward_backward(const data::LocalBatch& batch, double grad_scale) {
  const int64_t n = batch.token_count(), h = config_.hidden_size;
  const int n_layers = static_cast<int>(config_.num_hidden_layers);
  std::vector<T> x(n * h);
  const T* w = params_.gather(0);
  embedding_forward(w, batch.tokens.data(), x.data(), n, h);
  params_.release(0);
  std::vector<Saved> saved(n_layers);
  for (int l = 0; l < n_layers; ++l) {
    activity::set_layer(l, "forward");
    w = params_.gather(l + 1);
    layer_forward(l, w, batch, x, &saved[l]);
    params_.release(l + 1);
  }
  std::vector<T> dx;
  std::vector<T> grad(units_.back().count, T(0));
  activity::set_layer(-1, "lm head and loss");
  w = params_.gather(n_layers + 1);
  const double loss = head(w, grad.data(), batch, x, nullptr, grad_scale, &dx);
  params_.release(n_layers + 1);
  params_.reduce_grad(n_layers + 1, grad.data());
  std::vector<T>().swap(x);  // free the residual stream: the backward does not need it
  for (int l = n_layers - 1; l >= 0; --l) {
    grad.assign(units_[l + 1].count, T(0));
    activity::set_layer(l, "backward");
    w = params_.gather(l + 1);
    layer_backward(l, w, grad.data(), batch, saved[l], dx);
    params_.release(l + 1);
    params_.reduce_grad(l + 1, grad.data());
    saved[l] = Saved{};
  }
  grad.assign(units_[0].count, T(0));
  activity::set_layer(-1, "embedding backward");
  embedding_backward(batch.tokens.data(), dx.data(), grad.data(), n, h, config_.total_vocab_size());
  params_.reduce_grad(0, grad.data());
  return loss;
}

template class ReferenceTransformer<float>;
template class ReferenceTransformer<double>;

}  // namespace rw::model
