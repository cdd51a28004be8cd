// transformer.cpp: see transformer.h. Notation: N rows (local tokens of all local sequences),
// H hidden, KV = kv_heads * head_dim, I intermediate, V vocab. Weights [out, in] as Hugging
// Face stores them, so a projection is y = x W^T. Every op is a backend kernel on the compute
// stream (exec_.compute), on device pointers from the workspace, the ParamSource and the batch
// upload; the kernels are the ones the fp64 reference's host ops mirror (device/cpu/model_ops.h).
#include "src/model/transformer.h"

#include <algorithm>
#include <string>

#include "src/common/activity.h"
#include "src/common/fatal.h"
#include "src/model/transformer_workspace.h"

namespace rw::model {

namespace dv = device;

Transformer::Transformer(const LlamaConfig& config, ParamSource<float>& params, AttentionOp<float>& attention,
                         const dv::ExecContext& exec, TransformerOptions options)
    : config_(config), units_(parameter_units(config)), params_(params), attention_(attention), exec_(exec),
      options_(options), working_(working_dtype(options.precision)) {
  config_.validate();
  RW_CHECK(exec_.backend != nullptr && exec_.compute != nullptr, "transformer: no backend or compute stream");
  RW_CHECK(options_.ffn_chunk_tokens > 0 && options_.loss_chunk_tokens > 0, "chunk sizes must be positive");
  ws_ = std::make_unique<TransformerWorkspace>(*exec_.backend, config_, options_.ffn_chunk_tokens,
                                               options_.loss_chunk_tokens, working_,
                                               !params_.gathers_bf16());
  // Refused here, before any work (a caller that lets users choose checks first: --precision).
  RW_CHECK(working_ == dv::DType::f32 || exec_.backend->capabilities().bf16_storage,
           "transformer: --precision bf16 needs a backend with bf16 storage");
  RW_CHECK(attention_.takes(working_), std::string("transformer: this attention path takes fp32 q/k/v only, not ") +
                                           precision_name(options_.precision) + " (--precision fp32 here)");
}

Transformer::~Transformer() = default;

int64_t Transformer::workspace_allocations() const { return ws_->allocations(); }
std::size_t Transformer::workspace_bytes() const { return ws_->bytes(); }

// ---- kernel helpers (compute stream) ----

Operand Transformer::wk(const void* p) const { return {p, working_}; }
Output Transformer::wo(void* p) const { return {p, working_}; }

Operand Transformer::gather(int unit) {
  if (working_ == dv::DType::bf16 && params_.gathers_bf16()) {
    const dv::bf16_t* w = params_.gather_bf16(unit);
    RW_CHECK(w != nullptr, "transformer: the parameter source's bf16 gather returned nothing");
    return Operand(w, dv::DType::bf16);
  }
  const float* w = params_.gather(unit);
  if (working_ == dv::DType::f32) return w;
  dv::bf16_t* copy = ws_->weights_bf16();
  RW_CHECK(copy != nullptr, "transformer: the bf16 weight copy is not allocated (reserve first)");
  dv::ConvertArgs c;
  c.x = dv::view(w, {units_[unit].count});
  c.y = dv::view(copy, {units_[unit].count});
  exec_.backend->convert(c, *exec_.compute);
  return Operand(copy, dv::DType::bf16);
}

void Transformer::gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const Operand& a, int64_t lda,
                       const Operand& b, int64_t ldb, float beta, const Output& c, int64_t ldc) {
  dv::GemmArgs g;
  g.trans_a = ta ? dv::Transpose::yes : dv::Transpose::no;
  g.trans_b = tb ? dv::Transpose::yes : dv::Transpose::no;
  g.alpha = 1.f;
  g.beta = beta;
  g.a = ta ? a.matrix(k, m, lda) : a.matrix(m, k, lda);
  g.b = tb ? b.matrix(n, k, ldb) : b.matrix(k, n, ldb);
  g.c = c.matrix(m, n, ldc);
  exec_.backend->gemm(g, *exec_.compute);
}

void Transformer::copy(float* dst, const float* src, int64_t n) {
  exec_.backend->copy_async(dst, src, static_cast<std::size_t>(n) * sizeof(float), *exec_.compute);
}

void Transformer::add(const float* x, float* y, int64_t n) {
  dv::AddArgs a;
  a.x = dv::view(x, {n});
  a.y = dv::view(y, {n});
  exec_.backend->add(a, *exec_.compute);
}

void Transformer::fill_zero(float* x, int64_t n) {
  dv::FillArgs f;
  f.x = dv::view(x, {n});
  f.value = 0.0;
  exec_.backend->fill(f, *exec_.compute);
}

AttentionShape Transformer::attention_shape(const data::LocalBatch& batch) const {
  return AttentionShape{batch.n_sequences,
                        batch.n_local,
                        static_cast<int>(config_.num_attention_heads),
                        static_cast<int>(config_.num_key_value_heads),
                        static_cast<int>(config_.head_dim()),
                        working_};
}

DeviceBatch Transformer::begin(const data::LocalBatch& batch, bool training, bool token_losses) {
  const int64_t n = batch.token_count();
  RW_CHECK(n > 0 && static_cast<int64_t>(batch.tokens.size()) == n && static_cast<int64_t>(batch.targets.size()) == n &&
               static_cast<int64_t>(batch.positions.size()) == n &&
               static_cast<int64_t>(batch.segment_ids.size()) == n &&
               static_cast<int64_t>(batch.loss_weights.size()) == n,
           "transformer: the batch's arrays do not hold n_sequences x n_local entries");
  ws_->reserve(n, training, token_losses);
  const DeviceBatch in = ws_->upload(batch.tokens.data(), batch.targets.data(), batch.positions.data(),
                                     batch.segment_ids.data(), batch.loss_weights.data(), n, *exec_.compute);
  ws_->loss().zero(*exec_.compute);
  return in;
}

// ---- the model ----

void Transformer::project_qkv(const Operand& w, const DeviceBatch& in, int64_t n, const float* x,
                              const QkvBuffers& b) {
  const int64_t h = config_.hidden_size, kv = config_.kv_width();
  const auto& off = units_[1].offsets;
  dv::Backend& be = *exec_.backend;
  dv::Stream& s = *exec_.compute;
  dv::RmsNormFwdArgs norm;
  norm.x = dv::view(x, {n, h});
  norm.w = w.at(off[kInputNorm]).view({h});
  norm.y = wo(b.n1).view({n, h});
  norm.inv_rms = dv::view(b.inv1, {n});
  norm.eps = config_.rms_norm_eps;
  be.rmsnorm_fwd(norm, s);
  gemm(false, true, n, h, h, wk(b.n1), h, w.at(off[kQProj]), h, 0.f, wo(b.q), h);
  gemm(false, true, n, kv, h, wk(b.n1), h, w.at(off[kKProj]), h, 0.f, wo(b.k), kv);
  gemm(false, true, n, kv, h, wk(b.n1), h, w.at(off[kVProj]), h, 0.f, wo(b.v), kv);
  const int64_t hd = config_.head_dim();
  dv::RopeFwdArgs rq;
  rq.x = wo(b.q).view({n, config_.num_attention_heads, hd});
  rq.pos = dv::view(in.positions, {n});
  rq.theta = config_.rope_theta;
  be.rope_fwd(rq, s);
  dv::RopeFwdArgs rk = rq;
  rk.x = wo(b.k).view({n, config_.num_key_value_heads, hd});
  be.rope_fwd(rk, s);
}

void Transformer::layer_forward(int layer, const Operand& w, const DeviceBatch& in, const data::LocalBatch& batch,
                                bool training) {
  const int64_t n = batch.token_count(), h = config_.hidden_size, inter = config_.intermediate_size;
  const auto& off = units_[1].offsets;
  dv::Backend& be = *exec_.backend;
  dv::Stream& s = *exec_.compute;
  float* x = ws_->resid();
  const QkvBuffers b = ws_->qkv(n);
  float *o = nullptr, *lse = nullptr;
  if (training) {
    const SavedLayer saved = ws_->saved(layer, n);
    copy(saved.x_in, x, n * h);
    o = saved.attn_out;
    lse = saved.lse;
  } else {
    const AttnOutBuffers out = ws_->attn_out(n);
    o = out.out;
    lse = out.lse;
  }
  project_qkv(w, in, n, x, b);
  // q, k, v hold bf16 data in bf16 mode (AttentionShape::dtype says so).
  attention_.forward(layer, attention_shape(batch), static_cast<const float*>(b.q), static_cast<const float*>(b.k),
                     static_cast<const float*>(b.v), in.positions, in.segment_ids, o, lse);
  gemm(false, true, n, h, h, o, h, w.at(off[kOProj]), h, 1.f, x, h);  // x2 = x + o Wo^T
  // Blockwise FFN: x3 = x2 + down(silu(gate(n2)) * up(n2)) a chunk of rows at a time.
  const FfnBuffers f = ws_->ffn(n, training);
  const int64_t chunk = std::min<int64_t>(options_.ffn_chunk_tokens, n);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    float* xc = x + r0 * h;
    dv::RmsNormFwdArgs norm;
    norm.x = dv::view(xc, {rows, h});
    norm.w = w.at(off[kPostNorm]).view({h});
    norm.y = wo(f.n2).view({rows, h});
    norm.inv_rms = dv::view(f.inv2, {rows});
    norm.eps = config_.rms_norm_eps;
    be.rmsnorm_fwd(norm, s);
    gemm(false, true, rows, inter, h, wk(f.n2), h, w.at(off[kGateProj]), h, 0.f, wo(f.g), inter);
    gemm(false, true, rows, inter, h, wk(f.n2), h, w.at(off[kUpProj]), h, 0.f, wo(f.u), inter);
    dv::SwigluFwdArgs act;
    act.g = wk(f.g).view({rows * inter});
    act.u = wk(f.u).view({rows * inter});
    act.a = wo(f.a).view({rows * inter});
    be.swiglu_fwd(act, s);
    gemm(false, true, rows, h, inter, wk(f.a), inter, w.at(off[kDownProj]), inter, 1.f, xc, h);
  }
}

void Transformer::layer_backward(int layer, const Operand& w, float* grad, const DeviceBatch& in,
                                 const data::LocalBatch& batch) {
  const int64_t n = batch.token_count(), h = config_.hidden_size, kv = config_.kv_width(),
                inter = config_.intermediate_size, hd = config_.head_dim();
  const auto& off = units_[1].offsets;
  dv::Backend& be = *exec_.backend;
  dv::Stream& s = *exec_.compute;
  const SavedLayer saved = ws_->saved(layer, n);
  const QkvBuffers b = ws_->qkv(n);
  float* dx = ws_->dx();
  // Recompute the layer's forward up to the FFN input (the attention output is saved).
  project_qkv(w, in, n, saved.x_in, b);
  float* x2 = ws_->resid();
  copy(x2, saved.x_in, n * h);
  gemm(false, true, n, h, h, saved.attn_out, h, w.at(off[kOProj]), h, 1.f, x2, h);

  // FFN backward, chunk by chunk; dx holds dL/dx3 on entry and becomes dL/dx2.
  const FfnBuffers f = ws_->ffn(n, true);
  const int64_t chunk = std::min<int64_t>(options_.ffn_chunk_tokens, n);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    const float* x2c = x2 + r0 * h;
    float* dxc = dx + r0 * h;
    dv::RmsNormFwdArgs norm;
    norm.x = dv::view(x2c, {rows, h});
    norm.w = w.at(off[kPostNorm]).view({h});
    norm.y = wo(f.n2).view({rows, h});
    norm.inv_rms = dv::view(f.inv2, {rows});
    norm.eps = config_.rms_norm_eps;
    be.rmsnorm_fwd(norm, s);
    gemm(false, true, rows, inter, h, wk(f.n2), h, w.at(off[kGateProj]), h, 0.f, wo(f.g), inter);
    gemm(false, true, rows, inter, h, wk(f.n2), h, w.at(off[kUpProj]), h, 0.f, wo(f.u), inter);
    dv::SwigluFwdArgs act;
    act.g = wk(f.g).view({rows * inter});
    act.u = wk(f.u).view({rows * inter});
    act.a = wo(f.a).view({rows * inter});
    be.swiglu_fwd(act, s);
    gemm(true, false, h, inter, rows, dxc, h, wk(f.a), inter, 1.f, grad + off[kDownProj], inter);
    gemm(false, false, rows, inter, h, dxc, h, w.at(off[kDownProj]), inter, 0.f, wo(f.da), inter);
    dv::SwigluBwdArgs dact;
    dact.g = wk(f.g).view({rows * inter});
    dact.u = wk(f.u).view({rows * inter});
    dact.da = wk(f.da).view({rows * inter});
    dact.dg = wo(f.dg).view({rows * inter});
    dact.du = wo(f.du).view({rows * inter});
    be.swiglu_bwd(dact, s);
    gemm(false, false, rows, h, inter, wk(f.dg), inter, w.at(off[kGateProj]), h, 0.f, f.dn2, h);
    gemm(false, false, rows, h, inter, wk(f.du), inter, w.at(off[kUpProj]), h, 1.f, f.dn2, h);
    gemm(true, false, inter, h, rows, wk(f.dg), inter, wk(f.n2), h, 1.f, grad + off[kGateProj], h);
    gemm(true, false, inter, h, rows, wk(f.du), inter, wk(f.n2), h, 1.f, grad + off[kUpProj], h);
    dv::RmsNormBwdArgs dnorm;
    dnorm.x = dv::view(x2c, {rows, h});
    dnorm.w = w.at(off[kPostNorm]).view({h});
    dnorm.inv_rms = dv::view(f.inv2, {rows});
    dnorm.dy = dv::view(f.dn2, {rows, h});
    dnorm.dx = dv::view(f.dnorm, {rows, h});
    dnorm.dw = dv::view(grad + off[kPostNorm], {h});
    be.rmsnorm_bwd(dnorm, s);
    add(f.dnorm, dxc, rows * h);
  }

  // Attention block (its buffers reuse the FFN chunk's: those are dead now).
  const AttnGradBuffers g = ws_->attn_grads(n);
  gemm(false, false, n, h, h, dx, h, w.at(off[kOProj]), h, 0.f, wo(g.dout), h);
  gemm(true, false, h, h, n, dx, h, saved.attn_out, h, 1.f, grad + off[kOProj], h);
  attention_.backward(layer, attention_shape(batch), static_cast<const float*>(b.q), static_cast<const float*>(b.k),
                      static_cast<const float*>(b.v), in.positions, in.segment_ids, saved.attn_out,
                      static_cast<const float*>(g.dout), saved.lse, g.dq, g.dk, g.dv);
  dv::RopeBwdArgs rq;
  rq.x = dv::view(g.dq, {n, config_.num_attention_heads, hd});
  rq.pos = dv::view(in.positions, {n});
  rq.theta = config_.rope_theta;
  be.rope_bwd(rq, s);
  dv::RopeBwdArgs rk = rq;
  rk.x = dv::view(g.dk, {n, config_.num_key_value_heads, hd});
  be.rope_bwd(rk, s);
  gemm(true, false, h, h, n, g.dq, h, wk(b.n1), h, 1.f, grad + off[kQProj], h);
  gemm(true, false, kv, h, n, g.dk, kv, wk(b.n1), h, 1.f, grad + off[kKProj], h);
  gemm(true, false, kv, h, n, g.dv, kv, wk(b.n1), h, 1.f, grad + off[kVProj], h);
  float* dn1 = g.dn1;  // dout's memory: dead once the attention backward has read it (stream order)
  gemm(false, false, n, h, h, g.dq, h, w.at(off[kQProj]), h, 0.f, dn1, h);
  gemm(false, false, n, h, kv, g.dk, kv, w.at(off[kKProj]), h, 1.f, dn1, h);
  gemm(false, false, n, h, kv, g.dv, kv, w.at(off[kVProj]), h, 1.f, dn1, h);
  float* dnorm1 = g.dnorm1;  // dq's memory: dead once the GEMMs above have read it
  dv::RmsNormBwdArgs dnorm;
  dnorm.x = dv::view(saved.x_in, {n, h});
  dnorm.w = w.at(off[kInputNorm]).view({h});
  dnorm.inv_rms = dv::view(b.inv1, {n});
  dnorm.dy = dv::view(dn1, {n, h});
  dnorm.dx = dv::view(dnorm1, {n, h});
  dnorm.dw = dv::view(grad + off[kInputNorm], {h});
  be.rmsnorm_bwd(dnorm, s);
  add(dnorm1, dx, n * h);
}

void Transformer::head(const Operand& w, float* grad, const DeviceBatch& in, int64_t n, float* logits,
                       double grad_scale, bool token_losses) {
  // The head unit's lm_head (and vision_head, back to back) is one [vocab, h] matrix.
  const int64_t h = config_.hidden_size, vocab = config_.total_vocab_size();
  const auto& off = units_.back().offsets;
  const Operand w_norm = w.at(off[0]);
  const Operand w_lm = w.at(off[1]);
  const bool training = grad != nullptr;
  dv::Backend& be = *exec_.backend;
  dv::Stream& s = *exec_.compute;
  const float* x = ws_->resid();
  float* dx = ws_->dx();
  const HeadBuffers hb = ws_->head(n, training);
  const int64_t chunk = std::min<int64_t>(options_.loss_chunk_tokens, n);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    dv::RmsNormFwdArgs norm;
    norm.x = dv::view(x + r0 * h, {rows, h});
    norm.w = w_norm.view({h});
    norm.y = wo(hb.nf).view({rows, h});
    norm.inv_rms = dv::view(hb.inv, {rows});
    norm.eps = config_.rms_norm_eps;
    be.rmsnorm_fwd(norm, s);
    gemm(false, true, rows, vocab, h, wk(hb.nf), h, w_lm, h, 0.f, hb.logits, vocab);
    // The caller's logits (host memory): a synchronous copy, the forward tool's sync point.
    if (logits) be.copy_to_host(logits + r0 * vocab, hb.logits, static_cast<std::size_t>(rows * vocab) * sizeof(float));
    dv::CrossEntropyArgs ce;
    ce.logits = dv::view(static_cast<const float*>(hb.logits), {rows, vocab});
    ce.targets = dv::view(in.targets + r0, {rows});
    ce.weights = dv::view(in.loss_weights + r0, {rows});
    if (training) ce.dlogits = wo(hb.dlogits).view({rows, vocab});
    if (token_losses) ce.token_losses = dv::view(ws_->token_losses() + r0, {rows});
    ce.loss_sum = ws_->loss().view();
    ce.grad_scale = training ? grad_scale : 0.0;
    ce.text_vocab = config_.loss_split_column();  // a vision model: the target picks the head
    be.cross_entropy(ce, s);
    if (!training) continue;
    gemm(true, false, vocab, h, rows, wk(hb.dlogits), vocab, wk(hb.nf), h, 1.f, grad + off[1], h);
    gemm(false, false, rows, h, vocab, wk(hb.dlogits), vocab, w_lm, h, 0.f, hb.dnf, h);
    dv::RmsNormBwdArgs dnorm;
    dnorm.x = dv::view(x + r0 * h, {rows, h});
    dnorm.w = w_norm.view({h});
    dnorm.inv_rms = dv::view(hb.inv, {rows});
    dnorm.dy = dv::view(hb.dnf, {rows, h});
    dnorm.dx = dv::view(dx + r0 * h, {rows, h});
    dnorm.dw = dv::view(grad + off[0], {h});
    be.rmsnorm_bwd(dnorm, s);
  }
}

double Transformer::forward(const data::LocalBatch& batch, float* logits, double* token_losses) {
  const int64_t n = batch.token_count();
  const int n_layers = static_cast<int>(config_.num_hidden_layers);
  const DeviceBatch in = forward_layers(batch, token_losses != nullptr);
  activity::set_layer(-1, "lm head and loss");
  const Operand w = gather(n_layers + 1);
  head(w, nullptr, in, n, logits, 0.0, token_losses != nullptr);
  params_.release(n_layers + 1);
  if (!token_losses) return ws_->loss().read(*exec_.compute);
  // Each token's loss to the host (validation by position); their sum in token order.
  exec_.backend->copy_to_host(token_losses, ws_->token_losses(), static_cast<std::size_t>(n) * sizeof(double));
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) loss += token_losses[i];
  return loss;
}

void Transformer::embed(const Operand& w, const DeviceBatch& in, int64_t n) {
  const int64_t h = config_.hidden_size;
  dv::EmbeddingFwdArgs embed;
  embed.table = w.view({config_.total_vocab_size(), h});  // the input's id picks the table
  embed.tokens = dv::view(in.tokens, {n});
  embed.out = dv::view(ws_->resid(), {n, h});
  exec_.backend->embedding_fwd(embed, *exec_.compute);
}

void Transformer::forward_without_head(const data::LocalBatch& batch) { forward_layers(batch, false); }

DeviceBatch Transformer::forward_layers(const data::LocalBatch& batch, bool token_losses) {
  const int64_t n = batch.token_count();
  const int n_layers = static_cast<int>(config_.num_hidden_layers);
  const DeviceBatch in = begin(batch, false, token_losses);
  const Operand w0 = gather(0);
  params_.prefetch(1);
  embed(w0, in, n);
  params_.release(0);
  for (int l = 0; l < n_layers; ++l) {
    activity::set_layer(l, "forward");
    const Operand w = gather(l + 1);
    params_.prefetch(l + 2);
    layer_forward(l, w, in, batch, false);
    params_.release(l + 1);
  }
  return in;
}

double Transformer::forward_backward(const data::LocalBatch& batch, double grad_scale) {
  const int64_t n = batch.token_count(), h = config_.hidden_size;
  const int n_layers = static_cast<int>(config_.num_hidden_layers);
  const DeviceBatch in = begin(batch, true, false);
  dv::Backend& be = *exec_.backend;
  dv::Stream& s = *exec_.compute;
  Operand w = gather(0);
  params_.prefetch(1);
  embed(w, in, n);
  params_.release(0);
  for (int l = 0; l < n_layers; ++l) {
    activity::set_layer(l, "forward");
    w = gather(l + 1);
    params_.prefetch(l + 2);
    layer_forward(l, w, in, batch, true);
    params_.release(l + 1);
  }
  float* grad = ws_->grad();
  activity::set_layer(-1, "lm head and loss");
  fill_zero(grad, units_.back().count);
  w = gather(n_layers + 1);
  params_.prefetch(n_layers);  // the backward's first layer
  head(w, grad, in, n, nullptr, grad_scale, false);
  params_.release(n_layers + 1);
  params_.reduce_grad(n_layers + 1, grad);
  for (int l = n_layers - 1; l >= 0; --l) {
    activity::set_layer(l, "backward");
    fill_zero(grad, units_[l + 1].count);  // after reduce_grad's read in stream order
    w = gather(l + 1);
    if (l > 0) params_.prefetch(l);
    layer_backward(l, w, grad, in, batch);
    params_.release(l + 1);
    params_.reduce_grad(l + 1, grad);
  }
  activity::set_layer(-1, "embedding backward");
  fill_zero(grad, units_[0].count);
  dv::EmbeddingBwdArgs dembed;
  dembed.tokens = dv::view(in.tokens, {n});
  dembed.dout = dv::view(static_cast<const float*>(ws_->dx()), {n, h});
  dembed.dtable = dv::view(grad, {config_.total_vocab_size(), h});
  be.embedding_bwd(dembed, s);
  params_.reduce_grad(0, grad);
  return ws_->loss().read(s);
}

}  // namespace rw::model
