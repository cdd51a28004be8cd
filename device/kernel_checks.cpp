// kernel_checks.cpp: see kernel_checks.h. One check function per kernel; the shapes and types
// they enforce are those documented in kernel_args.h and attention_args.h.
#include "device/kernel_checks.h"

#include <cstdint>
#include <initializer_list>
#include <string>

#include "src/common/fatal.h"

namespace rw::device {
namespace {

template <class V>
std::string shape_text(const V& v) {
  std::string s = "[";
  for (int i = 0; i < v.rank; ++i) s += (i ? ", " : "") + std::to_string(v.shape[i]);
  return s + "]";
}

// Checks run on every launch: the message is built only when a check fails.
#define RW_KERNEL_REQUIRE(checker, cond, what) \
  do {                                         \
    if (!(cond)) (checker).fail(what);         \
  } while (0)

struct Checker {
  const char* kernel;

  [[noreturn]] void fail(const std::string& what) const { RW_FAIL(std::string("kernel ") + kernel + ": " + what); }
  template <class V>
  void dtype(const char* name, const V& v, std::initializer_list<DType> allowed) const {
    for (DType t : allowed)
      if (v.dtype == t) return;
    std::string names;
    for (DType t : allowed) names += std::string(names.empty() ? "" : " or ") + dtype_name(t);
    fail(std::string("argument '") + name + "' has dtype " + dtype_name(v.dtype) + ", expected " + names);
  }
  template <class V>
  void fp(const char* name, const V& v) const {
    dtype(name, v, {DType::f32, DType::bf16});
  }
  // Non-null data unless empty, rank 1..kMaxRank, non-negative dims.
  template <class V>
  void present(const char* name, const V& v) const {
    RW_KERNEL_REQUIRE(*this, v.rank >= 0 && v.rank <= kMaxRank,
                      std::string("argument '") + name + "' has rank " + std::to_string(v.rank));
    for (int i = 0; i < v.rank; ++i)
      RW_KERNEL_REQUIRE(*this, v.shape[i] >= 0,
                        std::string("argument '") + name + "' has a negative dimension " + shape_text(v));
    RW_KERNEL_REQUIRE(*this, v.empty() || v.data != nullptr, std::string("argument '") + name + "' is null");
  }
  template <class V>
  void contiguous(const char* name, const V& v) const {
    present(name, v);
    RW_KERNEL_REQUIRE(*this, v.is_contiguous(), std::string("argument '") + name + "' must be contiguous");
  }
  template <class V>
  void shape(const char* name, const V& v, std::initializer_list<int64_t> dims) const {
    contiguous(name, v);
    bool ok = v.rank == static_cast<int>(dims.size());
    int i = 0;
    for (int64_t d : dims) ok = ok && v.shape[i++] == d;
    if (ok) return;
    std::string expected = "[";
    i = 0;
    for (int64_t d : dims) expected += (i++ ? ", " : "") + std::to_string(d);
    fail(std::string("argument '") + name + "' has shape " + shape_text(v) + ", expected " + expected + "]");
  }
  template <class V>
  void rank(const char* name, const V& v, int r) const {
    contiguous(name, v);
    RW_KERNEL_REQUIRE(
        *this, v.rank == r,
        std::string("argument '") + name + "' has shape " + shape_text(v) + ", expected rank " + std::to_string(r));
  }
  template <class A, class B>
  void same_count(const char* name_a, const A& a, const char* name_b, const B& b) const {
    contiguous(name_a, a);
    contiguous(name_b, b);
    RW_KERNEL_REQUIRE(*this, a.n_elements() == b.n_elements(),
                      std::string("arguments '") + name_a + "' " + shape_text(a) + " and '" + name_b + "' " +
                          shape_text(b) + " differ in element count");
  }
  template <class V>
  void scalar(const char* name, const V& v) const {
    contiguous(name, v);
    dtype(name, v, {DType::f64});
    RW_KERNEL_REQUIRE(*this, v.n_elements() == 1,
                      std::string("argument '") + name + "' must be one f64 scalar, has shape " + shape_text(v));
  }
  template <class P>
  void pointer(const char* name, P p, std::size_t n_elements) const {
    RW_KERNEL_REQUIRE(*this, n_elements == 0 || p != nullptr, std::string("argument '") + name + "' is null");
  }
};

constexpr int64_t kBlasMax = (int64_t(1) << 31) - 1;

void check(const GemmArgs& g) {
  const Checker c{GemmArgs::kName};
  auto matrix = [&](const char* name, const auto& v) {
    c.present(name, v);
    c.fp(name, v);
    RW_KERNEL_REQUIRE(c, v.rank == 2,
                      std::string("argument '") + name + "' must be a matrix, has shape " + shape_text(v));
    RW_KERNEL_REQUIRE(c, v.shape[1] <= 1 || v.stride[1] == 1,
                      std::string("argument '") + name + "' must have unit column stride");
    RW_KERNEL_REQUIRE(c, v.shape[0] <= 1 || v.stride[0] >= v.shape[1],
                      std::string("argument '") + name + "' has leading dimension " + std::to_string(v.stride[0]) +
                          " < columns " + std::to_string(v.shape[1]));
    RW_KERNEL_REQUIRE(c, v.shape[0] <= kBlasMax && v.shape[1] <= kBlasMax && v.stride[0] <= kBlasMax,
                      std::string("argument '") + name + "' is too large for one GEMM");
  };
  matrix("a", g.a);
  matrix("b", g.b);
  matrix("c", g.c);
  const int64_t m = g.c.shape[0], n = g.c.shape[1];
  const bool ta = g.trans_a == Transpose::yes, tb = g.trans_b == Transpose::yes;
  const int64_t a_rows = ta ? g.a.shape[1] : g.a.shape[0], k = ta ? g.a.shape[0] : g.a.shape[1];
  const int64_t b_rows = tb ? g.b.shape[1] : g.b.shape[0], b_cols = tb ? g.b.shape[0] : g.b.shape[1];
  RW_KERNEL_REQUIRE(c, a_rows == m, "op(a) has " + std::to_string(a_rows) + " rows, c has " + std::to_string(m));
  RW_KERNEL_REQUIRE(c, b_cols == n, "op(b) has " + std::to_string(b_cols) + " columns, c has " + std::to_string(n));
  RW_KERNEL_REQUIRE(c, b_rows == k,
                    "op(a) has " + std::to_string(k) + " columns but op(b) has " + std::to_string(b_rows) + " rows");
}

void check(const FillArgs& f) {
  const Checker c{FillArgs::kName};
  c.contiguous("x", f.x);
  c.dtype("x", f.x, {DType::f32, DType::bf16, DType::f64, DType::i32});
}

template <class A>
void check_update(const A& a) {  // add, axpy: y op= x
  const Checker c{A::kName};
  c.same_count("x", a.x, "y", a.y);
  c.fp("x", a.x);
  c.fp("y", a.y);
}
void check(const AddArgs& a) {
  check_update(a);
}
void check(const AxpyArgs& a) {
  check_update(a);
}

void check(const ScaleArgs& a) {
  const Checker c{ScaleArgs::kName};
  c.contiguous("x", a.x);
  c.fp("x", a.x);
}

void check(const ConvertArgs& a) {
  const Checker c{ConvertArgs::kName};
  c.same_count("x", a.x, "y", a.y);
  c.fp("x", a.x);
  c.fp("y", a.y);
}

void check(const RmsNormFwdArgs& a) {
  const Checker c{RmsNormFwdArgs::kName};
  c.rank("x", a.x, 2);
  const int64_t rows = a.x.shape[0], cols = a.x.shape[1];
  c.shape("w", a.w, {cols});
  c.shape("y", a.y, {rows, cols});
  c.shape("inv_rms", a.inv_rms, {rows});
  c.fp("x", a.x);
  c.fp("w", a.w);
  c.fp("y", a.y);
  c.dtype("inv_rms", a.inv_rms, {DType::f32});
  RW_KERNEL_REQUIRE(c, a.eps > 0, "eps must be positive");
}

void check(const RmsNormBwdArgs& a) {
  const Checker c{RmsNormBwdArgs::kName};
  c.rank("x", a.x, 2);
  const int64_t rows = a.x.shape[0], cols = a.x.shape[1];
  c.shape("w", a.w, {cols});
  c.shape("inv_rms", a.inv_rms, {rows});
  c.shape("dy", a.dy, {rows, cols});
  c.shape("dx", a.dx, {rows, cols});
  c.shape("dw", a.dw, {cols});
  c.fp("x", a.x);
  c.fp("w", a.w);
  c.fp("dy", a.dy);
  c.fp("dx", a.dx);
  c.fp("dw", a.dw);
  c.dtype("inv_rms", a.inv_rms, {DType::f32});
}

void check_rope(const RopeArgs& a, const char* kernel) {
  const Checker c{kernel};
  c.rank("x", a.x, 3);
  c.fp("x", a.x);
  RW_KERNEL_REQUIRE(c, a.x.shape[2] % 2 == 0,
                    "head_dim (x's last dimension, " + std::to_string(a.x.shape[2]) + ") must be even");
  c.shape("pos", a.pos, {a.x.shape[0]});
  c.dtype("pos", a.pos, {DType::i32});
  RW_KERNEL_REQUIRE(c, a.theta > 0, "theta must be positive");
}
void check(const RopeFwdArgs& a) {
  check_rope(a, RopeFwdArgs::kName);
}
void check(const RopeBwdArgs& a) {
  check_rope(a, RopeBwdArgs::kName);
}

void check(const SwigluFwdArgs& a) {
  const Checker c{SwigluFwdArgs::kName};
  c.same_count("g", a.g, "u", a.u);
  c.same_count("g", a.g, "a", a.a);
  c.fp("g", a.g);
  c.fp("u", a.u);
  c.fp("a", a.a);
}

void check(const SwigluBwdArgs& a) {
  const Checker c{SwigluBwdArgs::kName};
  c.same_count("g", a.g, "u", a.u);
  c.same_count("g", a.g, "da", a.da);
  c.same_count("g", a.g, "dg", a.dg);
  c.same_count("g", a.g, "du", a.du);
  c.fp("g", a.g);
  c.fp("u", a.u);
  c.fp("da", a.da);
  c.fp("dg", a.dg);
  c.fp("du", a.du);
}

void check(const EmbeddingFwdArgs& a) {
  const Checker c{EmbeddingFwdArgs::kName};
  c.rank("table", a.table, 2);
  c.rank("tokens", a.tokens, 1);
  c.shape("out", a.out, {a.tokens.shape[0], a.table.shape[1]});
  c.fp("table", a.table);
  c.dtype("tokens", a.tokens, {DType::i32});
  c.fp("out", a.out);
}

void check(const EmbeddingBwdArgs& a) {
  const Checker c{EmbeddingBwdArgs::kName};
  c.rank("dtable", a.dtable, 2);
  c.rank("tokens", a.tokens, 1);
  c.shape("dout", a.dout, {a.tokens.shape[0], a.dtable.shape[1]});
  c.fp("dtable", a.dtable);
  c.dtype("tokens", a.tokens, {DType::i32});
  c.fp("dout", a.dout);
}

void check(const CrossEntropyArgs& a) {
  const Checker c{CrossEntropyArgs::kName};
  c.rank("logits", a.logits, 2);
  const int64_t n = a.logits.shape[0], vocab = a.logits.shape[1];
  c.fp("logits", a.logits);
  RW_KERNEL_REQUIRE(c, n == 0 || vocab > 0, "logits must have at least one column");
  RW_KERNEL_REQUIRE(c, a.text_vocab == 0 || (a.text_vocab > 0 && a.text_vocab < vocab),
                    "text_vocab must be 0 (no split) or in [1, vocab): each head needs a column");
  c.shape("targets", a.targets, {n});
  c.dtype("targets", a.targets, {DType::i32});
  c.shape("weights", a.weights, {n});
  c.dtype("weights", a.weights, {DType::f32});
  if (a.dlogits.data != nullptr) {  // optional
    c.shape("dlogits", a.dlogits, {n, vocab});
    c.fp("dlogits", a.dlogits);
  }
  if (a.token_losses.data != nullptr) {  // optional
    c.shape("token_losses", a.token_losses, {n});
    c.dtype("token_losses", a.token_losses, {DType::f64});
  }
  c.scalar("loss_sum", a.loss_sum);
}

void check(const AdamWArgs& a) {
  const Checker c{AdamWArgs::kName};
  c.rank("weights", a.weights, 1);
  const int64_t n = a.weights.shape[0];
  c.dtype("weights", a.weights, {DType::f32});
  c.shape("m", a.m, {n});
  c.dtype("m", a.m, {DType::f32});
  c.shape("v", a.v, {n});
  c.dtype("v", a.v, {DType::f32});
  c.shape("grads", a.grads, {n});
  c.fp("grads", a.grads);
  c.shape("decay", a.decay, {n});
  c.dtype("decay", a.decay, {DType::u8});
  RW_KERNEL_REQUIRE(c, a.step >= 1, "step must be >= 1 (1-based), is " + std::to_string(a.step));
}

template <class A>
void check_reduce(const A& a) {
  const Checker c{A::kName};
  c.contiguous("x", a.x);
  c.fp("x", a.x);
  c.scalar("result", a.result);
}
void check(const SumSquaresArgs& a) {
  check_reduce(a);
}
void check(const SumArgs& a) {
  check_reduce(a);
}

void check(const ArgmaxArgs& a) {
  const Checker c{ArgmaxArgs::kName};
  c.rank("x", a.x, 2);
  c.fp("x", a.x);
  RW_KERNEL_REQUIRE(c, a.x.shape[0] == 0 || a.x.shape[1] > 0, "x must have at least one column");
  c.shape("index", a.index, {a.x.shape[0]});
  c.dtype("index", a.index, {DType::i32});
}

void check_attn_common(const Checker& c, const AttnShape& s) {
  RW_KERNEL_REQUIRE(c, s.batch >= 0 && s.n_q >= 0 && s.n_k >= 0 && s.head_dim > 0 && s.heads > 0 && s.kv_heads > 0,
                    "bad attention shape (batch " + std::to_string(s.batch) + ", n_q " + std::to_string(s.n_q) +
                        ", n_k " + std::to_string(s.n_k) + ", heads " + std::to_string(s.heads) + ", kv_heads " +
                        std::to_string(s.kv_heads) + ", head_dim " + std::to_string(s.head_dim) + ")");
  RW_KERNEL_REQUIRE(
      c, s.heads % s.kv_heads == 0,
      "heads (" + std::to_string(s.heads) + ") must be a multiple of kv_heads (" + std::to_string(s.kv_heads) + ")");
}

void check_attn_mask(const Checker& c, const AttnShape& s, const AttnMaskArgs& m) {
  const std::size_t nq = static_cast<std::size_t>(s.batch) * s.n_q, nk = static_cast<std::size_t>(s.batch) * s.n_k;
  c.pointer("mask.q_pos", m.q_pos, nq && nk ? nq : 0);
  c.pointer("mask.q_seg", m.q_seg, nq && nk ? nq : 0);
  c.pointer("mask.k_pos", m.k_pos, nq && nk ? nk : 0);
  c.pointer("mask.k_seg", m.k_seg, nq && nk ? nk : 0);
}

void check(const AttnFwdStepArgs& a) {
  const Checker c{"attn_fwd_step"};
  check_attn_common(c, a.shape);
  RW_KERNEL_REQUIRE(c, a.tiling.block_q > 0 && a.tiling.block_k > 0, "attention block sizes must be positive");
  RW_KERNEL_REQUIRE(c, a.dtype == DType::f32 || a.dtype == DType::bf16,
                    std::string("q/k/v dtype ") + dtype_name(a.dtype) + ", expected f32 or bf16");
  RW_KERNEL_REQUIRE(c, a.scale > 0, "softmax scale must be positive");
  const std::size_t nq = detail::attn_q_elems(a.shape), nk = detail::attn_kv_elems(a.shape);
  c.pointer("q", a.q, nq);
  c.pointer("out", a.out, nq);
  c.pointer("lse", a.lse, detail::attn_rows(a.shape));
  c.pointer("k", a.k, nq ? nk : 0);
  c.pointer("v", a.v, nq ? nk : 0);
  check_attn_mask(c, a.shape, a.mask);
}

void check(const AttnBwdStepArgs& a) {
  const Checker c{"attn_bwd_step"};
  check_attn_common(c, a.shape);
  RW_KERNEL_REQUIRE(c, a.tiling.block_q > 0 && a.tiling.block_k > 0, "attention block sizes must be positive");
  RW_KERNEL_REQUIRE(c, a.dtype == DType::f32 || a.dtype == DType::bf16,
                    std::string("q/k/v/dout dtype ") + dtype_name(a.dtype) + ", expected f32 or bf16");
  RW_KERNEL_REQUIRE(c, a.scale > 0, "softmax scale must be positive");
  const std::size_t nq = detail::attn_q_elems(a.shape), nk = detail::attn_kv_elems(a.shape),
                    rows = detail::attn_rows(a.shape);
  const bool any = nq && nk;
  c.pointer("q", a.q, any ? nq : 0);
  c.pointer("dout", a.dout, any ? nq : 0);
  c.pointer("dq", a.dq, any ? nq : 0);
  c.pointer("lse", a.lse, any ? rows : 0);
  c.pointer("delta", a.delta, any ? rows : 0);
  c.pointer("k", a.k, any ? nk : 0);
  c.pointer("v", a.v, any ? nk : 0);
  c.pointer("dk", a.dk, any ? nk : 0);
  c.pointer("dv", a.dv, any ? nk : 0);
  check_attn_mask(c, a.shape, a.mask);
}

void check(const AttnRowDotArgs& a) {
  const Checker c{"attn_row_dot"};
  check_attn_common(c, a.shape);
  c.pointer("out", a.out, detail::attn_q_elems(a.shape));
  c.pointer("dout", a.dout, detail::attn_q_elems(a.shape));
  c.pointer("delta", a.delta, detail::attn_rows(a.shape));
}

void check(const AttnMergeArgs& a) {
  const Checker c{"attn_merge"};
  check_attn_common(c, a.shape);
  c.pointer("out_a", a.out_a, detail::attn_q_elems(a.shape));
  c.pointer("out_b", a.out_b, detail::attn_q_elems(a.shape));
  c.pointer("lse_a", a.lse_a, detail::attn_rows(a.shape));
  c.pointer("lse_b", a.lse_b, detail::attn_rows(a.shape));
}

// ---- VQGAN kernels (vision_args.h): NCHW image tensors ----

template <class V>
void check_image(const Checker& c, const char* name, const V& v) {
  c.rank(name, v, 4);
  c.fp(name, v);
}

void check(const Conv2dArgs& a) {
  const Checker c{Conv2dArgs::kName};
  check_image(c, "x", a.x);
  check_image(c, "weight", a.weight);
  const int64_t n = a.x.shape[0], cin = a.x.shape[1], h = a.x.shape[2], w = a.x.shape[3];
  const int64_t cout = a.weight.shape[0], kh = a.weight.shape[2], kw = a.weight.shape[3];
  RW_KERNEL_REQUIRE(c, a.weight.shape[1] == cin,
                    "weight " + shape_text(a.weight) + " has " + std::to_string(a.weight.shape[1]) +
                        " input channels, x " + shape_text(a.x) + " has " + std::to_string(cin));
  RW_KERNEL_REQUIRE(c, kh > 0 && kw > 0, "weight " + shape_text(a.weight) + " has an empty kernel");
  RW_KERNEL_REQUIRE(c, a.stride >= 1, "stride must be >= 1, is " + std::to_string(a.stride));
  RW_KERNEL_REQUIRE(c, a.pad_top >= 0 && a.pad_bottom >= 0 && a.pad_left >= 0 && a.pad_right >= 0,
                    "padding must be non-negative (top " + std::to_string(a.pad_top) + ", bottom " +
                        std::to_string(a.pad_bottom) + ", left " + std::to_string(a.pad_left) + ", right " +
                        std::to_string(a.pad_right) + ")");
  const int64_t hp = h + a.pad_top + a.pad_bottom, wp = w + a.pad_left + a.pad_right;
  RW_KERNEL_REQUIRE(c, hp >= kh && wp >= kw,
                    "the padded input " + std::to_string(hp) + " x " + std::to_string(wp) +
                        " is smaller than the kernel " + std::to_string(kh) + " x " + std::to_string(kw));
  const int64_t hout = (hp - kh) / a.stride + 1, wout = (wp - kw) / a.stride + 1;
  if (a.bias.data != nullptr) {  // optional
    c.shape("bias", a.bias, {cout});
    c.fp("bias", a.bias);
  }
  c.shape("y", a.y, {n, cout, hout, wout});
  c.fp("y", a.y);
}

void check(const GroupNormArgs& a) {
  const Checker c{GroupNormArgs::kName};
  check_image(c, "x", a.x);
  const int64_t channels = a.x.shape[1];
  RW_KERNEL_REQUIRE(c, a.groups >= 1, "groups must be >= 1, is " + std::to_string(a.groups));
  RW_KERNEL_REQUIRE(c, channels % a.groups == 0,
                    "groups (" + std::to_string(a.groups) + ") must divide the channels (" + std::to_string(channels) +
                        ")");
  RW_KERNEL_REQUIRE(c, a.eps > 0, "eps must be positive");
  RW_KERNEL_REQUIRE(c, (a.weight.data == nullptr) == (a.bias.data == nullptr),
                    "weight and bias must be given together (affine) or both left null");
  if (a.weight.data != nullptr) {
    c.shape("weight", a.weight, {channels});
    c.fp("weight", a.weight);
    c.shape("bias", a.bias, {channels});
    c.fp("bias", a.bias);
  }
  c.shape("y", a.y, {a.x.shape[0], channels, a.x.shape[2], a.x.shape[3]});
  c.fp("y", a.y);
}

void check(const SiluArgs& a) {
  const Checker c{SiluArgs::kName};
  c.same_count("x", a.x, "y", a.y);
  c.fp("x", a.x);
  c.fp("y", a.y);
}

void check(const UpsampleNearest2xArgs& a) {
  const Checker c{UpsampleNearest2xArgs::kName};
  check_image(c, "x", a.x);
  c.shape("y", a.y, {a.x.shape[0], a.x.shape[1], 2 * a.x.shape[2], 2 * a.x.shape[3]});
  c.fp("y", a.y);
}

void check(const VqNearestArgs& a) {
  const Checker c{VqNearestArgs::kName};
  check_image(c, "z", a.z);
  c.rank("codebook", a.codebook, 2);
  c.fp("codebook", a.codebook);
  const int64_t n = a.z.shape[0], dim = a.z.shape[1], h = a.z.shape[2], w = a.z.shape[3];
  RW_KERNEL_REQUIRE(c, a.codebook.shape[1] == dim,
                    "codebook " + shape_text(a.codebook) + " has vectors of " + std::to_string(a.codebook.shape[1]) +
                        ", z " + shape_text(a.z) + " has " + std::to_string(dim) + " channels");
  RW_KERNEL_REQUIRE(c, a.codebook.shape[0] > 0 || a.z.empty(), "the codebook is empty");
  RW_KERNEL_REQUIRE(c, a.codebook.shape[0] <= kBlasMax, "the codebook has more rows than i32 indices reach");
  c.shape("indices", a.indices, {n, h, w});
  c.dtype("indices", a.indices, {DType::i32});
  if (a.quantized.data != nullptr) {  // optional
    c.shape("quantized", a.quantized, {n, dim, h, w});
    c.fp("quantized", a.quantized);
  }
}

void check(const VqLookupArgs& a) {
  const Checker c{VqLookupArgs::kName};
  c.rank("indices", a.indices, 3);
  c.dtype("indices", a.indices, {DType::i32});
  c.rank("codebook", a.codebook, 2);
  c.fp("codebook", a.codebook);
  c.shape("out", a.out, {a.indices.shape[0], a.codebook.shape[1], a.indices.shape[1], a.indices.shape[2]});
  c.fp("out", a.out);
}

}  // namespace

void check_kernel_call(const KernelCall& call) {
  std::visit([](const auto& a) { check(a); }, call);
}

}  // namespace rw::device
