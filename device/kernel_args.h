// kernel_args.h: the argument structs of the model, optimizer and elementwise kernels (the
// attention kernels' are in attention_args.h). Every tensor argument is a view (dtype, shape,
// strides); every struct lists its views with their names and access in visit(), which is
// what lets one generic piece of code check them (kernel_checks.cpp), convert bf16 storage on
// the CPU (cpu/cpu_kernels.cpp) and translate device pointers on sim-gpu (sim/).
//
// Conventions: row-major, contiguous unless a matrix view says otherwise (GEMM only); shapes
// are those of the comments; "+=" outputs accumulate into what the tensor holds; reductions
// land in a device scalar (an f64 view of shape [1]) and add to it, so a caller zeroes it first
// (fill) and may reduce several tensors into one scalar in order. Formulas: device/cpu/model_ops.h.
//
// Element types: "fp" means f32 or bf16 storage (bf16: fp32 arithmetic, rounded to bf16 on
// store); the kernels' checks (kernel_checks.cpp) enforce each argument's types.
#pragma once
#include <cstdint>

#include "device/tensor_view.h"

namespace rw::device {

enum class Transpose { no, yes };

// How a kernel touches an argument: read, overwritten, or read and written (accumulated).
enum class Access : uint8_t { read, write, read_write };

// C = alpha op(A) op(B) + beta C; A stored [m, k] (trans_a: [k, m]), B [k, n] (trans_b: [n, k]),
// C [m, n]; fp (any mix); row stride = leading dimension; fp32 accumulation.
struct GemmArgs {
  static constexpr const char* kName = "gemm";
  Transpose trans_a = Transpose::no, trans_b = Transpose::no;
  float alpha = 1.f, beta = 0.f;
  ConstTensorView a, b;
  TensorView c;
  template <class F>
  void visit(F&& f) {
    f("a", a, Access::read);
    f("b", b, Access::read);
    f("c", c, beta == 0.f ? Access::write : Access::read_write);
  }
};

// x[i] = value (x: f32, bf16, f64 or i32; value converted to x's type).
struct FillArgs {
  static constexpr const char* kName = "fill";
  TensorView x;
  double value = 0;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::write);
  }
};

// y += x (residual add), elementwise over equal element counts; fp.
struct AddArgs {
  static constexpr const char* kName = "add";
  ConstTensorView x;
  TensorView y;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("y", y, Access::read_write);
  }
};

// y += alpha x; fp.
struct AxpyArgs {
  static constexpr const char* kName = "axpy";
  float alpha = 1.f;
  ConstTensorView x;
  TensorView y;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("y", y, Access::read_write);
  }
};

// x *= alpha; fp.
struct ScaleArgs {
  static constexpr const char* kName = "scale";
  float alpha = 1.f;
  TensorView x;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read_write);
  }
};

// y = x converted to y's type (f32 <-> bf16, or a copy); equal element counts.
struct ConvertArgs {
  static constexpr const char* kName = "convert";
  ConstTensorView x;
  TensorView y;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("y", y, Access::write);
  }
};

// y = x / sqrt(mean(x^2) + eps) * w per row; x, y [rows, cols], w [cols] fp; inv_rms [rows] f32.
struct RmsNormFwdArgs {
  static constexpr const char* kName = "rmsnorm_fwd";
  ConstTensorView x, w;
  TensorView y, inv_rms;
  double eps = 1e-5;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("w", w, Access::read);
    f("y", y, Access::write);
    f("inv_rms", inv_rms, Access::write);
  }
};

// dx = dL/dx through the norm (overwritten), dw += sum over rows; inv_rms from the forward.
struct RmsNormBwdArgs {
  static constexpr const char* kName = "rmsnorm_bwd";
  ConstTensorView x, w, inv_rms, dy;
  TensorView dx, dw;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("w", w, Access::read);
    f("inv_rms", inv_rms, Access::read);
    f("dy", dy, Access::read);
    f("dx", dx, Access::write);
    f("dw", dw, Access::read_write);
  }
};

// Rotate-half RoPE in place on x [tokens, heads, head_dim] (fp), pos [tokens] i32;
// angle_i = pos * theta^(-2i/head_dim). rope_bwd applies the inverse (transpose) rotation.
struct RopeArgs {
  static constexpr const char* kName = "rope";
  TensorView x;
  ConstTensorView pos;
  double theta = 10000.0;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read_write);
    f("pos", pos, Access::read);
  }
};

struct RopeFwdArgs : RopeArgs {
  static constexpr const char* kName = "rope_fwd";
};
struct RopeBwdArgs : RopeArgs {
  static constexpr const char* kName = "rope_bwd";
};

// a = silu(g) * u elementwise; fp.
struct SwigluFwdArgs {
  static constexpr const char* kName = "swiglu_fwd";
  ConstTensorView g, u;
  TensorView a;
  template <class F>
  void visit(F&& f) {
    f("g", g, Access::read);
    f("u", u, Access::read);
    f("a", a, Access::write);
  }
};

// dg, du from da (overwritten); fp.
struct SwigluBwdArgs {
  static constexpr const char* kName = "swiglu_bwd";
  ConstTensorView g, u, da;
  TensorView dg, du;
  template <class F>
  void visit(F&& f) {
    f("g", g, Access::read);
    f("u", u, Access::read);
    f("da", da, Access::read);
    f("dg", dg, Access::write);
    f("du", du, Access::write);
  }
};

// out[t] = table[tokens[t]]; table [vocab, hidden] fp, tokens [n] i32 in [0, vocab), out [n, hidden].
struct EmbeddingFwdArgs {
  static constexpr const char* kName = "embedding_fwd";
  ConstTensorView table, tokens;
  TensorView out;
  template <class F>
  void visit(F&& f) {
    f("table", table, Access::read);
    f("tokens", tokens, Access::read);
    f("out", out, Access::write);
  }
};

// dtable[tokens[t]] += dout[t], tokens in order (repeatable).
struct EmbeddingBwdArgs {
  static constexpr const char* kName = "embedding_bwd";
  ConstTensorView tokens, dout;
  TensorView dtable;
  template <class F>
  void visit(F&& f) {
    f("tokens", tokens, Access::read);
    f("dout", dout, Access::read);
    f("dtable", dtable, Access::read_write);
  }
};

// loss_sum += sum over tokens with target >= 0 and weight != 0 of weight * (logsumexp(row) -
// row[target]), token order; logits [n, vocab] fp, targets [n] i32, weights [n] f32, loss_sum
// f64 [1]. dlogits [n, vocab] fp (optional: data may be null) = grad_scale * weight *
// (softmax - onehot(target)), zero rows for ignored tokens. token_losses [n] f64 (optional)
// = each token's term of the sum (0 for ignored tokens; validation by position).
// text_vocab > 0 splits the columns in two heads (LWM's text and vision vocabularies): a row
// whose target is >= text_vocab is a softmax over columns [text_vocab, vocab) only, any other
// row over [0, text_vocab) only; dlogits are zero outside the row's own range. 0: one softmax
// over every column.
struct CrossEntropyArgs {
  static constexpr const char* kName = "cross_entropy";
  ConstTensorView logits, targets, weights;
  TensorView dlogits, loss_sum, token_losses;
  double grad_scale = 1.0;
  int64_t text_vocab = 0;  // 0 or in [1, vocab)
  template <class F>
  void visit(F&& f) {
    f("logits", logits, Access::read);
    f("targets", targets, Access::read);
    f("weights", weights, Access::read);
    f("dlogits", dlogits, Access::write);
    f("loss_sum", loss_sum, Access::read_write);
    f("token_losses", token_losses, Access::write);
  }
};

// AdamW on one flat shard (decoupled weight decay; src/train/optimizer.h's arithmetic, in fp64
// per element): g = grads * grad_multiplier (clipping); m = b1 m + (1-b1) g;
// v = b2 v + (1-b2) g^2; w -= lr (m/(1-b1^step) / (sqrt(v/(1-b2^step)) + eps) + wd w [decay]).
// weights, m, v f32 (master copies); grads fp; decay u8 (nonzero: apply weight decay); all [n].
struct AdamWArgs {
  static constexpr const char* kName = "adamw";
  TensorView weights, m, v;
  ConstTensorView grads, decay;
  double lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  double grad_multiplier = 1.0;
  int step = 1;  // 1-based, for the bias corrections
  template <class F>
  void visit(F&& f) {
    f("weights", weights, Access::read_write);
    f("m", m, Access::read_write);
    f("v", v, Access::read_write);
    f("grads", grads, Access::read);
    f("decay", decay, Access::read);
  }
};

// result += sum_i x[i]^2 (sum_squares) or sum_i x[i] (sum), in fp64, in an order that depends
// on n only (the same bits every call): the CPU backends add in index order; the GPU backends
// (device/cuda/) add fixed per-block partials, then the partials in order. x fp, result f64 [1].
struct ReduceArgs {
  static constexpr const char* kName = "reduce";
  ConstTensorView x;
  TensorView result;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("result", result, Access::read_write);
  }
};

// index[r] = the first j with x[r, j] maximal (std::max_element's choice); x [rows, cols] fp,
// index [rows] i32 (greedy decoding, needle evaluation).
struct ArgmaxArgs {
  static constexpr const char* kName = "argmax";
  ConstTensorView x;
  TensorView index;
  template <class F>
  void visit(F&& f) {
    f("x", x, Access::read);
    f("index", index, Access::write);
  }
};

struct SumSquaresArgs : ReduceArgs {
  static constexpr const char* kName = "sum_squares";
};
struct SumArgs : ReduceArgs {
  static constexpr const char* kName = "sum";
};

}  // namespace rw::device
