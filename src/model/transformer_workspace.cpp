// transformer_workspace.cpp: see transformer_workspace.h.
#include "src/model/transformer_workspace.h"

#include <algorithm>
#include <cstring>

#include "src/common/fatal.h"

namespace rw::model {
namespace {

constexpr int64_t kAlignFloats = 64;  // 256 bytes

// Hands out consecutive aligned pieces of a float region; with a null base it only counts.
// take(n): n floats; take_w(n): n elements of the working dtype (f32 or bf16).
class Carver {
 public:
  Carver(float* base, device::DType working, int64_t start = 0) : base_(base), working_(working), used_(start) {}
  float* take(int64_t n) {
    float* p = base_ ? base_ + used_ : nullptr;
    used_ += (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
    return p;
  }
  void* take_w(int64_t n) { return take(working_ == device::DType::bf16 ? (n + 1) / 2 : n); }
  int64_t used() const { return used_; }

 private:
  float* base_;
  device::DType working_;
  int64_t used_;
};

QkvBuffers carve_qkv(Carver& c, int64_t n, int64_t h, int64_t kv) {
  QkvBuffers b;
  b.n1 = c.take_w(n * h);
  b.inv1 = c.take(n);
  b.q = c.take_w(n * h);
  b.k = c.take_w(n * kv);
  b.v = c.take_w(n * kv);
  return b;
}

AttnOutBuffers carve_attn_out(Carver& c, int64_t n, int64_t h, int64_t heads) {
  AttnOutBuffers b;
  b.out = c.take(n * h);
  b.lse = c.take(heads * n);
  return b;
}

FfnBuffers carve_ffn(Carver& c, int64_t rows, int64_t h, int64_t inter, bool backward) {
  FfnBuffers b{};
  float* n2 = c.take(rows * h);  // fp32 size: dnorm reuses it
  b.n2 = n2;
  b.inv2 = c.take(rows);
  b.g = c.take_w(rows * inter);
  b.u = c.take_w(rows * inter);
  b.a = c.take_w(rows * inter);
  if (!backward) return b;
  b.da = b.a;  // written (GEMM) after the last read of a (the down projection's weight gradient)
  b.dg = c.take_w(rows * inter);
  b.du = c.take_w(rows * inter);
  b.dn2 = c.take(rows * h);
  b.dnorm = n2;  // written (rmsnorm_bwd) after the last read of n2 (the gate/up weight gradients)
  return b;
}

AttnGradBuffers carve_attn_grads(Carver& c, int64_t n, int64_t h, int64_t kv) {
  AttnGradBuffers b;
  b.dn1 = c.take(n * h);  // fp32 size: dout (working) first, dn1 once the attention backward has read dout
  b.dout = b.dn1;
  b.dq = c.take(n * h);
  b.dnorm1 = b.dq;
  b.dk = c.take(n * kv);
  b.dv = c.take(n * kv);
  return b;
}

HeadBuffers carve_head(Carver& c, int64_t rows, int64_t h, int64_t vocab, bool training) {
  HeadBuffers b{};
  b.nf = c.take_w(rows * h);
  b.inv = c.take(rows);
  b.logits = c.take(rows * vocab);
  if (!training) return b;
  b.dlogits = c.take_w(rows * vocab);
  b.dnf = c.take(rows * h);
  return b;
}

}  // namespace

TransformerWorkspace::TransformerWorkspace(device::Backend& backend, const LlamaConfig& config,
                                           int64_t ffn_chunk_tokens, int64_t loss_chunk_tokens, device::DType working,
                                           bool weight_copy)
    : backend_(backend),
      working_(working),
      weight_copy_(weight_copy && working == device::DType::bf16),
      hidden_(config.hidden_size),
      kv_(config.kv_width()),
      inter_(config.intermediate_size),
      vocab_(config.total_vocab_size()),
      heads_(config.num_attention_heads),
      layers_(config.num_hidden_layers),
      ffn_chunk_(ffn_chunk_tokens),
      loss_chunk_(loss_chunk_tokens),
      max_unit_(0),
      staged_(backend.create_event()) {
  for (const ParamUnit& u : parameter_units(config)) max_unit_ = std::max(max_unit_, u.count);
}

template <class T>
void TransformerWorkspace::grow(device::DeviceArray<T>& array, std::size_t count, device::MemoryKind kind) {
  if (array.size() >= count) return;
  array = device::DeviceArray<T>();  // release first: the old and new never coexist
  array = device::DeviceArray<T>(backend_, count, kind);
  ++allocations_;
}

int64_t TransformerWorkspace::layer_scratch_floats(int64_t n, bool training) const {
  Carver qkv(nullptr, working_);
  carve_qkv(qkv, n, hidden_, kv_);
  const int64_t rows = std::min(ffn_chunk_, n);
  Carver fwd_out(nullptr, working_, qkv.used()), ffn(nullptr, working_, qkv.used()),
      grads(nullptr, working_, qkv.used());
  carve_attn_out(fwd_out, n, hidden_, heads_);
  carve_ffn(ffn, rows, hidden_, inter_, training);
  if (training) carve_attn_grads(grads, n, hidden_, kv_);
  return std::max({fwd_out.used(), ffn.used(), grads.used()});
}

int64_t TransformerWorkspace::head_floats(int64_t n, bool training) const {
  Carver c(nullptr, working_);
  carve_head(c, std::min(loss_chunk_, n), hidden_, vocab_, training);
  return c.used();
}

int64_t TransformerWorkspace::saved_stride(int64_t n) const {
  Carver c(nullptr, working_);
  c.take(n * hidden_);
  c.take(n * hidden_);
  c.take(heads_ * n);
  return c.used();
}

void TransformerWorkspace::reserve(int64_t n, bool training, bool token_losses) {
  RW_CHECK(n > 0, "transformer workspace: a batch without tokens");
  if (!loss_) {
    loss_ = std::make_unique<device::DeviceScalar>(backend_);
    allocations_ += 3;  // device value, pinned slot, event
  }
  grow(inputs_, static_cast<std::size_t>(5 * n));
  grow(staging_, static_cast<std::size_t>(5 * n), device::MemoryKind::pinned_host);
  grow(resid_, static_cast<std::size_t>(n * hidden_));
  grow(scratch_, static_cast<std::size_t>(std::max(layer_scratch_floats(n, training), head_floats(n, training))));
  if (weight_copy_) grow(weights_bf16_, static_cast<std::size_t>(max_unit_));
  if (training) {
    grow(dx_, static_cast<std::size_t>(n * hidden_));
    grow(saved_, static_cast<std::size_t>(layers_ * saved_stride(n)));
    grow(grad_, static_cast<std::size_t>(max_unit_));
  }
  if (token_losses) grow(token_losses_, static_cast<std::size_t>(n));
}

DeviceBatch TransformerWorkspace::upload(const int32_t* tokens, const int32_t* targets, const int32_t* positions,
                                         const int32_t* segment_ids, const float* loss_weights, int64_t n,
                                         device::Stream& stream) {
  // The previous call's copy may still read the staging buffer (pinned memory the host must not
  // touch until its copy has finished).
  backend_.host_wait(*staged_);
  int32_t* s = staging_.data();
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(int32_t);
  std::memcpy(s, tokens, bytes);
  std::memcpy(s + n, targets, bytes);
  std::memcpy(s + 2 * n, positions, bytes);
  std::memcpy(s + 3 * n, segment_ids, bytes);
  std::memcpy(s + 4 * n, loss_weights, bytes);  // f32 bits
  backend_.copy_async(inputs_.data(), s, 5 * bytes, stream);
  backend_.record(*staged_, stream);
  const int32_t* d = inputs_.data();
  return {d, d + n, d + 2 * n, d + 3 * n, reinterpret_cast<const float*>(d + 4 * n)};
}

QkvBuffers TransformerWorkspace::qkv(int64_t n) {
  Carver c(scratch_.data(), working_);
  return carve_qkv(c, n, hidden_, kv_);
}

AttnOutBuffers TransformerWorkspace::attn_out(int64_t n) {
  Carver qkv(nullptr, working_);
  carve_qkv(qkv, n, hidden_, kv_);
  Carver c(scratch_.data(), working_, qkv.used());
  return carve_attn_out(c, n, hidden_, heads_);
}

FfnBuffers TransformerWorkspace::ffn(int64_t n, bool training) {
  Carver qkv(nullptr, working_);
  carve_qkv(qkv, n, hidden_, kv_);
  Carver c(scratch_.data(), working_, qkv.used());
  return carve_ffn(c, std::min(ffn_chunk_, n), hidden_, inter_, training);
}

AttnGradBuffers TransformerWorkspace::attn_grads(int64_t n) {
  Carver qkv(nullptr, working_);
  carve_qkv(qkv, n, hidden_, kv_);
  Carver c(scratch_.data(), working_, qkv.used());
  return carve_attn_grads(c, n, hidden_, kv_);
}

HeadBuffers TransformerWorkspace::head(int64_t n, bool training) {
  Carver c(scratch_.data(), working_);
  return carve_head(c, std::min(loss_chunk_, n), hidden_, vocab_, training);
}

SavedLayer TransformerWorkspace::saved(int layer, int64_t n) {
  Carver c(saved_.data(), working_, layer * saved_stride(n));
  SavedLayer s;
  s.x_in = c.take(n * hidden_);
  s.attn_out = c.take(n * hidden_);
  s.lse = c.take(heads_ * n);
  return s;
}

std::size_t TransformerWorkspace::bytes() const {
  return inputs_.n_bytes() + staging_.n_bytes() + resid_.n_bytes() + dx_.n_bytes() + saved_.n_bytes() +
         grad_.n_bytes() + scratch_.n_bytes() + token_losses_.n_bytes() + weights_bf16_.n_bytes() +
         (loss_ ? 2 * sizeof(double) : 0);
}

}  // namespace rw::model
