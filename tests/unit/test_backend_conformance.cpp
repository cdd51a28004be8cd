// test_backend_conformance.cpp: every kernel of every registered backend available here (cpu,
// cpu-reference, sim-gpu, the emulated GPU backends cuda-emu and hip-emu; cuda/hip on a machine
// with the device; RINGWORLD_TEST_BACKENDS chooses, backends_under_test.h) against the fp64 reference, for fp32
// storage and for bf16 storage (fp32 arithmetic) where the kernel takes it. Work is enqueued on
// a created (non-default) stream and read back after synchronize(stream), as correct callers
// do, so an asynchronous backend is exercised as it will be used.
//
// Oracle: the fp64 instantiation of the host ops (device/cpu/model_ops.h), the fp64 attention
// reference (device/cpu/attention_reference.h) and direct formulas, applied to the values as
// stored (inputs rounded to the storage type first), so only the kernel's own arithmetic and
// output rounding are measured.
//
// Tolerance basis (style.md item 6; the contract's precision, not our CPU code's, which often
// does better by using fp64 inside): a kernel computing in fp32 makes, per output, an error of
// at most c * u32 * S, where u32 = 2^-24 is fp32's unit roundoff, c the number of roundings
// on the output's longest dependency chain (for a sum of n terms, n: the classical bound
// gamma_n ~ n u on the sum of the terms' magnitudes) and S the magnitude those roundings act on
// (the sum of |terms|, written per kernel below). An output stored in bf16 is rounded once
// more: + u_bf16 * max|G| with u_bf16 = 2^-8 (8 significant bits). Attention uses the rule of
// tests/test_support.h (at most 2x the error of a naive fp32 implementation, plus a few ulps).
// Exact operations (copies, fill, conversions) must match bit for bit.
//
// About 2 s on one core (sim-gpu with RINGWORLD_SIM_GPU_DELAY_US=200 set by ctest is the slower).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cstring>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "device/attention_builder.h"
#include "device/backend.h"
#include "device/cpu/attention_reference.h"
#include "device/cpu/model_ops.h"
#include "tests/test_support.h"
#include "tests/unit/backends_under_test.h"

using namespace rw;
using namespace rw::device;

namespace {

constexpr double kU32 = 1.0 / (1 << 24);   // fp32 unit roundoff
constexpr double kUbf16 = 1.0 / (1 << 8);  // bf16 unit roundoff

// The storage rounding of a value.
double stored_as(DType t, double x) {
  switch (t) {
    case DType::f32: return static_cast<float>(x);
    case DType::bf16: return float_from_bf16(bf16_from_float(static_cast<float>(x)));
    case DType::f64: return x;
    case DType::i32: return static_cast<int32_t>(x);
    case DType::u8: return static_cast<uint8_t>(x);
  }
  return x;
}

// A device tensor of any dtype with its stored values on the host (the oracle's inputs).
class DevTensor {
 public:
  DevTensor(Backend& backend, DType dtype, const std::vector<double>& values)
      : backend_(backend), dtype_(dtype), count_(values.size()) {
    stored.resize(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) stored[i] = stored_as(dtype, values[i]);
    std::vector<unsigned char> bytes(count_ * dtype_size(dtype));
    for (std::size_t i = 0; i < count_; ++i) encode(stored[i], bytes.data() + i * dtype_size(dtype));
    data_ = backend.allocate(std::max<std::size_t>(bytes.size(), 1));
    backend.copy_to_device(data_, bytes.data(), bytes.size());
  }
  ~DevTensor() { backend_.release(data_); }
  DevTensor(const DevTensor&) = delete;
  DevTensor& operator=(const DevTensor&) = delete;

  TensorView view(std::initializer_list<int64_t> shape) { return make_view<void*>(data_, dtype_, shape); }
  template <class T>
  T* data() const {
    return static_cast<T*>(data_);
  }
  // The values now on the device (synchronous copy: waits for every stream).
  std::vector<double> read() const {
    std::vector<unsigned char> bytes(count_ * dtype_size(dtype_));
    backend_.copy_to_host(bytes.data(), data_, bytes.size());
    std::vector<double> out(count_);
    for (std::size_t i = 0; i < count_; ++i) out[i] = decode(bytes.data() + i * dtype_size(dtype_));
    return out;
  }
  std::vector<double> stored;  // the values as uploaded (rounded to dtype)

 private:
  void encode(double x, unsigned char* p) const {
    switch (dtype_) {
      case DType::f32: {
        float f = static_cast<float>(x);
        std::memcpy(p, &f, 4);
        break;
      }
      case DType::bf16: {
        bf16_t b = bf16_from_float(static_cast<float>(x));
        std::memcpy(p, &b, 2);
        break;
      }
      case DType::f64: std::memcpy(p, &x, 8); break;
      case DType::i32: {
        int32_t i = static_cast<int32_t>(x);
        std::memcpy(p, &i, 4);
        break;
      }
      case DType::u8: *p = static_cast<uint8_t>(x); break;
    }
  }
  double decode(const unsigned char* p) const {
    switch (dtype_) {
      case DType::f32: {
        float f;
        std::memcpy(&f, p, 4);
        return f;
      }
      case DType::bf16: {
        bf16_t b;
        std::memcpy(&b, p, 2);
        return float_from_bf16(b);
      }
      case DType::f64: {
        double d;
        std::memcpy(&d, p, 8);
        return d;
      }
      case DType::i32: {
        int32_t i;
        std::memcpy(&i, p, 4);
        return i;
      }
      case DType::u8: return *p;
    }
    return 0;
  }
  Backend& backend_;
  DType dtype_;
  std::size_t count_;
  void* data_ = nullptr;
};

std::vector<double> random_values(std::size_t n, uint64_t seed, double scale = 1.0) {
  test::Rng rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = (2 * rng.uniform() - 1) * scale;
  return v;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// The tolerance of the header's basis: c roundings of fp32 on magnitude S, plus the bf16
// rounding of the output when it is stored in bf16 (on the output's own scale).
double tol(double c, double S, DType out, double out_scale) {
  return c * kU32 * S + (out == DType::bf16 ? kUbf16 * out_scale : 0.0);
}

void check_close(const std::string& what, const std::vector<double>& got, const std::vector<double>& gold,
                 double tolerance) {
  REQUIRE(got.size() == gold.size());
  const double err = test::max_abs_error(got, gold);
  INFO(what << ": max |error| " << err << ", tolerance " << tolerance);
  CHECK(err <= tolerance);
}

void check_exact(const std::string& what, const std::vector<double>& got, const std::vector<double>& gold) {
  REQUIRE(got.size() == gold.size());
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < got.size(); ++i) wrong += !(got[i] == gold[i]);
  INFO(what << ": " << wrong << " of " << got.size() << " elements differ");
  CHECK(wrong == 0);
}

struct Ctx {
  Backend& be;
  Stream& stream;
  DType dt;  // storage of the fp tensors under test
  std::string label(const char* kernel) const { return be.name() + " " + kernel + " (" + dtype_name(dt) + ")"; }
};

// ---- one test per kernel ----

void test_gemm(Ctx& c) {
  // Every transpose combination, alpha/beta, C inside a wider matrix (ld > n).
  const int64_t m = 13, n = 9, k = 21, ldc = 12;
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    DevTensor a(c.be, c.dt, random_values(a_rows * a_cols, 1 + t)),
        b(c.be, c.dt, random_values(b_rows * b_cols, 5 + t));
    DevTensor cc(c.be, c.dt, random_values(m * ldc, 9 + t));
    GemmArgs g;
    g.trans_a = ta ? Transpose::yes : Transpose::no;
    g.trans_b = tb ? Transpose::yes : Transpose::no;
    g.alpha = 0.75f;
    g.beta = t == 3 ? 0.f : 0.5f;
    g.a = a.view({a_rows, a_cols});
    g.b = b.view({b_rows, b_cols});
    g.c = cc.view({m, n});
    g.c.stride[0] = ldc;
    g.c.shape[0] = m;
    c.be.gemm(g, c.stream);
    c.be.synchronize(c.stream);
    std::vector<double> gold = cc.stored, scale(m * ldc, 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0, s_abs = 0;
        for (int64_t p = 0; p < k; ++p) {
          const double av = ta ? a.stored[p * a_cols + i] : a.stored[i * a_cols + p];
          const double bv = tb ? b.stored[j * b_cols + p] : b.stored[p * b_cols + j];
          s += av * bv;
          s_abs += std::fabs(av * bv);
        }
        gold[i * ldc + j] = g.alpha * s + g.beta * cc.stored[i * ldc + j];
        scale[i * ldc + j] = std::fabs(g.alpha) * s_abs + std::fabs(g.beta * cc.stored[i * ldc + j]);
      }
    // gamma_{k+2} on alpha |A||B| + |beta C|; columns past n (ld padding) must be untouched.
    check_close(c.label("gemm") + " transposes " + std::to_string(t), cc.read(), gold,
                tol(k + 2, max_abs(scale), c.dt, max_abs(gold)));
  }
}

void test_fill_convert(Ctx& c) {
  DevTensor x(c.be, c.dt, random_values(37, 20));
  FillArgs f;
  f.x = x.view({37});
  f.value = 0.3;
  c.be.fill(f, c.stream);
  c.be.synchronize(c.stream);
  check_exact(c.label("fill"), x.read(), std::vector<double>(37, stored_as(c.dt, 0.3)));

  DevTensor scalar(c.be, DType::f64, {5.0});
  FillArgs z;
  z.x = scalar.view({1});
  z.value = -2.5;
  c.be.fill(z, c.stream);
  c.be.synchronize(c.stream);
  check_exact(c.label("fill f64 scalar"), scalar.read(), {-2.5});

  // f32 -> dt -> f32: exact rounding each way (values chosen with bits below bf16's precision).
  DevTensor src(c.be, DType::f32, random_values(41, 21)), mid(c.be, c.dt, std::vector<double>(41, 0.0)),
      back(c.be, DType::f32, std::vector<double>(41, 0.0));
  c.be.convert(ConvertArgs{src.view({41}), mid.view({41})}, c.stream);
  c.be.convert(ConvertArgs{mid.view({41}), back.view({41})}, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> gold(41);
  for (int i = 0; i < 41; ++i) gold[i] = stored_as(c.dt, src.stored[i]);
  check_exact(c.label("convert"), mid.read(), gold);
  check_exact(c.label("convert back"), back.read(), gold);
}

void test_elementwise(Ctx& c) {
  const int64_t n = 1000;
  DevTensor x(c.be, c.dt, random_values(n, 30)), y(c.be, c.dt, random_values(n, 31)),
      y2(c.be, c.dt, random_values(n, 31)), z(c.be, c.dt, random_values(n, 32));
  c.be.add(AddArgs{x.view({n}), y.view({n})}, c.stream);
  AxpyArgs ax;
  ax.alpha = -1.5f;
  ax.x = x.view({10, 100});  // any shape with the same element count
  ax.y = y2.view({n});
  c.be.axpy(ax, c.stream);
  ScaleArgs sc;
  sc.alpha = 0.3f;
  sc.x = z.view({n});
  c.be.scale(sc, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> g_add(n), g_axpy(n), g_scale(n), s_add(n), s_axpy(n);
  for (int64_t i = 0; i < n; ++i) {
    g_add[i] = y.stored[i] + x.stored[i];
    s_add[i] = std::fabs(y.stored[i]) + std::fabs(x.stored[i]);
    g_axpy[i] = y2.stored[i] + double(ax.alpha) * x.stored[i];
    s_axpy[i] = std::fabs(y2.stored[i]) + std::fabs(double(ax.alpha) * x.stored[i]);
    g_scale[i] = double(sc.alpha) * z.stored[i];
  }
  // One or two roundings on |y| + |alpha x|; scale's alpha is itself fp32 (0.3f), taken as given.
  check_close(c.label("add"), y.read(), g_add, tol(1, max_abs(s_add), c.dt, max_abs(g_add)));
  check_close(c.label("axpy"), y2.read(), g_axpy, tol(2, max_abs(s_axpy), c.dt, max_abs(g_axpy)));
  check_close(c.label("scale"), z.read(), g_scale, tol(1, max_abs(g_scale), c.dt, max_abs(g_scale)));
}

void test_rmsnorm(Ctx& c) {
  const int64_t rows = 7, cols = 48;
  DevTensor x(c.be, c.dt, random_values(rows * cols, 40, 2.0)), w(c.be, c.dt, random_values(cols, 41)),
      y(c.be, c.dt, std::vector<double>(rows * cols, 0.0)), inv(c.be, DType::f32, std::vector<double>(rows, 0.0));
  RmsNormFwdArgs f;
  f.x = x.view({rows, cols});
  f.w = w.view({cols});
  f.y = y.view({rows, cols});
  f.inv_rms = inv.view({rows});
  f.eps = 1e-5;
  c.be.rmsnorm_fwd(f, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> gy(rows * cols), ginv(rows);
  cpu::rmsnorm_forward<double>(x.stored.data(), w.stored.data(), gy.data(), ginv.data(), rows, cols, f.eps);
  // Sum of cols positive squares (gamma_cols, relative), sqrt and divide, two products: relative
  // error (cols + 4) u on every output.
  check_close(c.label("rmsnorm_fwd y"), y.read(), gy, tol(cols + 4, max_abs(gy), c.dt, max_abs(gy)));
  check_close(c.label("rmsnorm_fwd inv_rms"), inv.read(), ginv, tol(cols + 3, max_abs(ginv), DType::f32, 0));

  // Backward from the stored inv_rms (both sides use the same values).
  DevTensor dy(c.be, c.dt, random_values(rows * cols, 42)), dx(c.be, c.dt, std::vector<double>(rows * cols, 0.0)),
      dw(c.be, c.dt, random_values(cols, 43)), inv_in(c.be, DType::f32, inv.read());
  RmsNormBwdArgs b;
  b.x = x.view({rows, cols});
  b.w = w.view({cols});
  b.inv_rms = inv_in.view({rows});
  b.dy = dy.view({rows, cols});
  b.dx = dx.view({rows, cols});
  b.dw = dw.view({cols});
  c.be.rmsnorm_bwd(b, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> gdx(rows * cols), gdw = dw.stored;
  cpu::rmsnorm_backward<double>(x.stored.data(), w.stored.data(), inv_in.stored.data(), dy.stored.data(), gdx.data(),
                                gdw.data(), rows, cols);
  // dx = inv (dy w - x inv mean): magnitude inv (|dy w| + |x| inv M), M = mean |dy w x inv|,
  // roundings cols + 6; dw += sum over rows of dy x inv: rows + 3 on |dw| + sum |dy x inv|.
  double s_dx = 0, s_dw = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const double iv = inv_in.stored[r];
    double m = 0;
    for (int64_t j = 0; j < cols; ++j)
      m += std::fabs(dy.stored[r * cols + j] * w.stored[j] * x.stored[r * cols + j] * iv);
    m /= cols;
    for (int64_t j = 0; j < cols; ++j)
      s_dx = std::max(
          s_dx, iv * (std::fabs(dy.stored[r * cols + j] * w.stored[j]) + std::fabs(x.stored[r * cols + j]) * iv * m));
  }
  for (int64_t j = 0; j < cols; ++j) {
    double s = std::fabs(dw.stored[j]);
    for (int64_t r = 0; r < rows; ++r)
      s += std::fabs(dy.stored[r * cols + j] * x.stored[r * cols + j] * inv_in.stored[r]);
    s_dw = std::max(s_dw, s);
  }
  check_close(c.label("rmsnorm_bwd dx"), dx.read(), gdx, tol(cols + 6, s_dx, c.dt, max_abs(gdx)));
  check_close(c.label("rmsnorm_bwd dw"), dw.read(), gdw, tol(rows + 3, s_dw, c.dt, max_abs(gdw)));
}

void test_rope(Ctx& c) {
  const int64_t tokens = 11, heads = 3, d = 16;
  std::vector<double> pos(tokens);
  for (int64_t t = 0; t < tokens; ++t) pos[t] = (t * 7) % 50;  // positions up to 49
  DevTensor x(c.be, c.dt, random_values(tokens * heads * d, 50)), dx(c.be, c.dt, random_values(tokens * heads * d, 51)),
      p(c.be, DType::i32, pos);
  RopeFwdArgs f;
  f.x = x.view({tokens, heads, d});
  f.pos = p.view({tokens});
  f.theta = 500.0;
  c.be.rope_fwd(f, c.stream);
  RopeBwdArgs b;
  b.x = dx.view({tokens, heads, d});
  b.pos = p.view({tokens});
  b.theta = 500.0;
  c.be.rope_bwd(b, c.stream);
  c.be.synchronize(c.stream);
  std::vector<int32_t> pos32(pos.begin(), pos.end());
  std::vector<double> gx = x.stored, gdx = dx.stored;
  cpu::rope_forward<double>(gx.data(), pos32.data(), tokens, heads, d, f.theta);
  cpu::rope_backward<double>(gdx.data(), pos32.data(), tokens, heads, d, b.theta);
  // out = x1 cos - x2 sin: 3 roundings on |x1| + |x2|, plus the angle's error (pos * freq in
  // fp32: <= 2 u * angle, angle <= 49) times the derivative's bound |x1| + |x2|: 3 + 2 * 49.
  double s = 0;
  for (const auto* v : {&x.stored, &dx.stored})
    for (int64_t r = 0; r < tokens * heads; ++r)
      for (int64_t i = 0; i < d / 2; ++i)
        s = std::max(s, std::fabs((*v)[r * d + i]) + std::fabs((*v)[r * d + i + d / 2]));
  check_close(c.label("rope_fwd"), x.read(), gx, tol(3 + 2 * 49, s, c.dt, max_abs(gx)));
  check_close(c.label("rope_bwd"), dx.read(), gdx, tol(3 + 2 * 49, s, c.dt, max_abs(gdx)));
}

void test_swiglu(Ctx& c) {
  const int64_t n = 500;
  DevTensor g(c.be, c.dt, random_values(n, 60, 6.0)), u(c.be, c.dt, random_values(n, 61)),
      da(c.be, c.dt, random_values(n, 62)), a(c.be, c.dt, std::vector<double>(n, 0.0)),
      dg(c.be, c.dt, std::vector<double>(n, 0.0)), du(c.be, c.dt, std::vector<double>(n, 0.0));
  c.be.swiglu_fwd(SwigluFwdArgs{g.view({n}), u.view({n}), a.view({n})}, c.stream);
  c.be.swiglu_bwd(SwigluBwdArgs{g.view({n}), u.view({n}), da.view({n}), dg.view({n}), du.view({n})}, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> ga(n), gdg(n), gdu(n), s_dg(n);
  cpu::swiglu_forward<double>(g.stored.data(), u.stored.data(), ga.data(), n);
  cpu::swiglu_backward<double>(g.stored.data(), u.stored.data(), da.stored.data(), gdg.data(), gdu.data(), n);
  for (int64_t i = 0; i < n; ++i) s_dg[i] = std::fabs(da.stored[i] * u.stored[i]) * (1 + 2 * std::fabs(g.stored[i]));
  // a = g sigmoid(g) u: exp (<= 2 ulp), 1 + e, divide, two products: relative 8 u. dg =
  // da u sig (1 + g (1 - sig)): 1 - sig cancels (absolute u), so 10 u on |da u| (1 + 2|g|).
  check_close(c.label("swiglu_fwd"), a.read(), ga, tol(8, max_abs(ga), c.dt, max_abs(ga)));
  check_close(c.label("swiglu_bwd du"), du.read(), gdu, tol(8, max_abs(gdu), c.dt, max_abs(gdu)));
  check_close(c.label("swiglu_bwd dg"), dg.read(), gdg, tol(10, max_abs(s_dg), c.dt, max_abs(gdg)));
}

void test_embedding(Ctx& c) {
  const int64_t vocab = 17, hidden = 24, n = 40;
  std::vector<double> tokens(n);
  test::Rng rng(70);
  for (auto& t : tokens) t = rng.below(static_cast<int>(vocab));
  DevTensor table(c.be, c.dt, random_values(vocab * hidden, 71)), tok(c.be, DType::i32, tokens),
      out(c.be, c.dt, std::vector<double>(n * hidden, 0.0)), dout(c.be, c.dt, random_values(n * hidden, 72)),
      dtable(c.be, c.dt, random_values(vocab * hidden, 73));
  c.be.embedding_fwd(EmbeddingFwdArgs{table.view({vocab, hidden}), tok.view({n}), out.view({n, hidden})}, c.stream);
  c.be.embedding_bwd(EmbeddingBwdArgs{tok.view({n}), dout.view({n, hidden}), dtable.view({vocab, hidden})}, c.stream);
  c.be.synchronize(c.stream);
  std::vector<int32_t> tok32(tokens.begin(), tokens.end());
  std::vector<double> gout(n * hidden), gdt = dtable.stored;
  cpu::embedding_forward<double>(table.stored.data(), tok32.data(), gout.data(), n, hidden);
  cpu::embedding_backward<double>(tok32.data(), dout.stored.data(), gdt.data(), n, hidden, vocab);
  check_exact(c.label("embedding_fwd"), out.read(), gout);  // a copy
  // dtable += the rows of each token's occurrences: (count + 1) roundings on |dtable| + sum |dout|.
  std::vector<int> count(vocab, 0);
  for (int32_t t : tok32) ++count[t];
  const double max_count = *std::max_element(count.begin(), count.end());
  double s = 0;
  for (int64_t v = 0; v < vocab; ++v)
    for (int64_t j = 0; j < hidden; ++j) {
      double m = std::fabs(dtable.stored[v * hidden + j]);
      for (int64_t t = 0; t < n; ++t)
        if (tok32[t] == v) m += std::fabs(dout.stored[t * hidden + j]);
      s = std::max(s, m);
    }
  check_close(c.label("embedding_bwd"), dtable.read(), gdt, tol(max_count + 1, s, c.dt, max_abs(gdt)));
}

void test_cross_entropy(Ctx& c) {
  const int64_t n = 9, vocab = 33;
  std::vector<double> targets(n), weights(n);
  test::Rng rng(80);
  for (int64_t t = 0; t < n; ++t) {
    targets[t] = t == 3 ? -1 : rng.below(static_cast<int>(vocab));  // one ignored token
    weights[t] = t == 5 ? 0.0 : 0.5 + rng.uniform();                // one zero weight
  }
  DevTensor logits(c.be, c.dt, random_values(n * vocab, 81, 4.0)), tg(c.be, DType::i32, targets),
      wt(c.be, DType::f32, weights), dl(c.be, c.dt, std::vector<double>(n * vocab, 0.0)),
      loss(c.be, DType::f64, {1.25});
  CrossEntropyArgs a;
  a.logits = logits.view({n, vocab});
  a.targets = tg.view({n});
  a.weights = wt.view({n});
  a.dlogits = dl.view({n, vocab});
  a.loss_sum = loss.view({1});
  a.grad_scale = 0.1;
  c.be.cross_entropy(a, c.stream);
  a.dlogits = TensorView{};  // forward only, accumulating into the same scalar
  c.be.cross_entropy(a, c.stream);
  // Forward only with each token's loss (into a scalar of its own).
  DevTensor tl(c.be, DType::f64, std::vector<double>(n, -7.0)), loss_tl(c.be, DType::f64, {0.0});
  CrossEntropyArgs per_token = a;
  per_token.token_losses = tl.view({n});
  per_token.loss_sum = loss_tl.view({1});
  c.be.cross_entropy(per_token, c.stream);
  c.be.synchronize(c.stream);
  std::vector<int32_t> tg32(targets.begin(), targets.end());
  std::vector<float> wf(weights.begin(), weights.end());
  for (auto& w : wf) w = static_cast<float>(w);
  std::vector<double> gdl(n * vocab);
  std::vector<double> gtl(n);
  const double one = cpu::cross_entropy<double>(logits.stored.data(), tg32.data(), wf.data(), n, vocab, a.grad_scale,
                                                gdl.data(), gtl.data());
  // Per token lse - logit: vocab + 4 roundings on |max| + log(sum) + |logit|; the sum over
  // tokens adds n more; loss accumulated twice onto 1.25.
  double s_loss = 1.25, max_lse = 0;
  for (int64_t t = 0; t < n; ++t) {
    double mx = -1e300;
    for (int64_t j = 0; j < vocab; ++j) mx = std::max(mx, logits.stored[t * vocab + j]);
    double sum = 0;
    for (int64_t j = 0; j < vocab; ++j) sum += std::exp(logits.stored[t * vocab + j] - mx);
    const double lse = mx + std::log(sum);
    max_lse = std::max(max_lse, std::fabs(lse));
    if (tg32[t] >= 0) s_loss += 2 * wf[t] * (std::fabs(lse) + std::fabs(logits.stored[t * vocab + tg32[t]]));
  }
  check_close(c.label("cross_entropy loss_sum"), loss.read(), {1.25 + 2 * one},
              tol(vocab + 4 + 2 * n, s_loss, DType::f64, 0));
  // Each token's term: vocab + 4 roundings on its own magnitudes; ignored tokens exactly 0 (the
  // -7 the buffer held must be gone); the scalar is their sum.
  double s_token = 0;
  for (int64_t t = 0; t < n; ++t)
    if (tg32[t] >= 0) s_token = std::max(s_token, wf[t] * (max_lse + std::fabs(logits.stored[t * vocab + tg32[t]])));
  check_close(c.label("cross_entropy token_losses"), tl.read(), gtl, tol(vocab + 4, s_token, DType::f64, 0));
  CHECK(tl.read()[3] == 0.0);
  CHECK(tl.read()[5] == 0.0);
  check_close(c.label("cross_entropy loss_sum with token_losses"), loss_tl.read(), {one},
              tol(vocab + 4 + n, s_loss, DType::f64, 0));
  // dlogits = scale w (softmax - onehot): the softmax inherits lse's absolute error, (vocab + 8)
  // u (1 + |lse|), relative, on probabilities <= 1, times |grad_scale w|.
  const double s_dl = a.grad_scale * 1.5 * (1 + max_lse);
  check_close(c.label("cross_entropy dlogits"), dl.read(), gdl, tol(vocab + 8, s_dl, c.dt, max_abs(gdl)));
}

// The split cross-entropy of a dual vocabulary (CrossEntropyArgs::text_vocab, LWM's text and
// vision heads): each row's softmax over its target's head only. Oracle: the formula written out
// here in fp64 (not the host op), on the stored logits.
void test_split_cross_entropy(Ctx& c) {
  const int64_t n = 12, vocab = 33, split = 20;
  // Text and vision targets, both heads' edge columns, an ignored token, a zero weight.
  const std::vector<double> targets = {3, 25, split - 1, split, vocab - 1, 0, -1, 27, 11, 21, 7, 30};
  std::vector<double> weights(n);
  test::Rng rng(82);
  for (int64_t t = 0; t < n; ++t) weights[t] = t == 8 ? 0.0 : 0.5 + rng.uniform();
  DevTensor logits(c.be, c.dt, random_values(n * vocab, 83, 4.0)), tg(c.be, DType::i32, targets),
      wt(c.be, DType::f32, weights), dl(c.be, c.dt, std::vector<double>(n * vocab, 5.0)),
      loss(c.be, DType::f64, {0.5}), tl(c.be, DType::f64, std::vector<double>(n, -7.0));
  CrossEntropyArgs a;
  a.logits = logits.view({n, vocab});
  a.targets = tg.view({n});
  a.weights = wt.view({n});
  a.dlogits = dl.view({n, vocab});
  a.token_losses = tl.view({n});
  a.loss_sum = loss.view({1});
  a.grad_scale = 0.3;
  a.text_vocab = split;
  c.be.cross_entropy(a, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> gdl(n * vocab, 0.0), gtl(n, 0.0);
  double gloss = 0.5, s_loss = 0.5, s_token = 0, max_lse = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int target = static_cast<int>(targets[t]);
    const double w = static_cast<float>(weights[t]);
    if (target < 0 || w == 0) continue;
    const int64_t lo = target >= split ? split : 0, hi = target >= split ? vocab : split;
    const double* row = logits.stored.data() + t * vocab;
    double mx = -1e300, sum = 0;
    for (int64_t j = lo; j < hi; ++j) mx = std::max(mx, row[j]);
    for (int64_t j = lo; j < hi; ++j) sum += std::exp(row[j] - mx);
    const double lse = mx + std::log(sum);
    gtl[t] = w * (lse - row[target]);
    gloss += gtl[t];
    for (int64_t j = lo; j < hi; ++j) gdl[t * vocab + j] = a.grad_scale * w * (std::exp(row[j] - lse) - (j == target));
    max_lse = std::max(max_lse, std::fabs(lse));
    s_loss += w * (std::fabs(lse) + std::fabs(row[target]));
    s_token = std::max(s_token, w * (std::fabs(lse) + std::fabs(row[target])));
  }
  // The bases of test_cross_entropy (a head has at most vocab columns).
  check_close(c.label("split cross_entropy loss_sum"), loss.read(), {gloss}, tol(vocab + 4 + n, s_loss, DType::f64, 0));
  check_close(c.label("split cross_entropy token_losses"), tl.read(), gtl, tol(vocab + 4, s_token, DType::f64, 0));
  const double s_dl = a.grad_scale * 1.5 * (1 + max_lse);
  check_close(c.label("split cross_entropy dlogits"), dl.read(), gdl, tol(vocab + 8, s_dl, c.dt, max_abs(gdl)));
  // Outside a row's head (and on ignored rows) the gradient is exactly zero: the 5.0 is gone.
  const std::vector<double> got = dl.read();
  int64_t nonzero_outside = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < vocab; ++j)
      if (gdl[t * vocab + j] == 0.0 && got[t * vocab + j] != 0.0) ++nonzero_outside;
  CHECK(nonzero_outside == 0);
  CHECK(tl.read()[6] == 0.0);
  CHECK(tl.read()[8] == 0.0);
}

void test_adamw(Ctx& c) {
  const int64_t n = 300;
  std::vector<double> decay(n), v0 = random_values(n, 93, 0.01);
  for (int64_t i = 0; i < n; ++i) decay[i] = i % 3 != 0;
  for (auto& v : v0) v = std::fabs(v);
  DevTensor w(c.be, DType::f32, random_values(n, 90)), g(c.be, c.dt, random_values(n, 91)),
      m(c.be, DType::f32, random_values(n, 92, 0.1)), v(c.be, DType::f32, v0), dm(c.be, DType::u8, decay);
  AdamWArgs a;
  a.weights = w.view({n});
  a.m = m.view({n});
  a.v = v.view({n});
  a.grads = g.view({n});
  a.decay = dm.view({n});
  a.lr = 1e-2;
  a.weight_decay = 0.1;
  a.grad_multiplier = 0.7;
  a.step = 3;
  c.be.adamw(a, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> gw = w.stored, gm = m.stored, gv = v.stored;
  std::vector<uint8_t> d8(decay.begin(), decay.end());
  cpu::AdamWHyper h;
  h.lr = a.lr;
  h.beta1 = a.beta1;
  h.beta2 = a.beta2;
  h.eps = a.eps;
  h.weight_decay = a.weight_decay;
  h.grad_multiplier = a.grad_multiplier;
  h.step = a.step;
  cpu::adamw_update<double>(gw.data(), g.stored.data(), gm.data(), gv.data(), d8.data(), n, h);
  // In fp32: m, v are two products and a sum (4 u on |b1 m| + |(1-b1) g|, same for v); the
  // step m^/(sqrt(v^)+eps) + wd w takes ~8 roundings, relative; w - lr step one more: 16 u on
  // |w| + lr |step|. Outputs are f32 master copies whatever the gradient's storage.
  double s_w = 0, s_m = 0, s_v = 0;
  const double b1c = 1 - std::pow(h.beta1, h.step), b2c = 1 - std::pow(h.beta2, h.step);
  for (int64_t i = 0; i < n; ++i) {
    const double gg = g.stored[i] * h.grad_multiplier;
    s_m = std::max(s_m, std::fabs(h.beta1 * m.stored[i]) + std::fabs((1 - h.beta1) * gg));
    s_v = std::max(s_v, std::fabs(h.beta2 * v.stored[i]) + std::fabs((1 - h.beta2) * gg * gg));
    const double step =
        std::fabs(gm[i] / b1c) / (std::sqrt(gv[i] / b2c) + h.eps) + h.weight_decay * std::fabs(w.stored[i]);
    s_w = std::max(s_w, std::fabs(w.stored[i]) + h.lr * step);
  }
  check_close(c.label("adamw weights"), w.read(), gw, tol(16, s_w, DType::f32, 0));
  check_close(c.label("adamw m"), m.read(), gm, tol(4, s_m, DType::f32, 0));
  check_close(c.label("adamw v"), v.read(), gv, tol(4, s_v, DType::f32, 0));
}

void test_reductions(Ctx& c) {
  const int64_t n = 2000;
  DevTensor x(c.be, c.dt, random_values(n, 100)), y(c.be, c.dt, random_values(n / 2, 101)), sq(c.be, DType::f64, {0.0}),
      sm(c.be, DType::f64, {0.0});
  FillArgs zero;
  zero.x = sq.view({1});
  c.be.fill(zero, c.stream);
  SumSquaresArgs a;
  a.x = x.view({n});
  a.result = sq.view({1});
  c.be.sum_squares(a, c.stream);
  a.x = y.view({n / 2});  // a second tensor into the same scalar
  c.be.sum_squares(a, c.stream);
  SumArgs b;
  b.x = x.view({20, n / 20});
  b.result = sm.view({1});
  c.be.sum(b, c.stream);
  c.be.synchronize(c.stream);
  double gsq = 0, gsum = 0, s_sum = 0;
  for (double v : x.stored) gsq += v * v, gsum += v, s_sum += std::fabs(v);
  for (double v : y.stored) gsq += v * v;
  // A sum of n terms in fp32: gamma_n on the sum of |terms| (here the squares are positive).
  check_close(c.label("sum_squares"), sq.read(), {gsq}, tol(n + n / 2 + 1, gsq, DType::f64, 0));
  check_close(c.label("sum"), sm.read(), {gsum}, tol(n + 1, s_sum, DType::f64, 0));
}

void test_argmax(Ctx& c) {
  const int64_t rows = 12, cols = 29;
  std::vector<double> x = random_values(rows * cols, 130);
  x[3 * cols + 7] = x[3 * cols + 20] = 2.0;  // a tie: the first wins
  DevTensor dx(c.be, c.dt, x), index(c.be, DType::i32, std::vector<double>(rows, -5.0));
  c.be.argmax(ArgmaxArgs{dx.view({rows, cols}), index.view({rows})}, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> gold(rows);
  for (int64_t r = 0; r < rows; ++r)
    gold[r] = static_cast<double>(std::max_element(dx.stored.begin() + r * cols, dx.stored.begin() + (r + 1) * cols) -
                                  (dx.stored.begin() + r * cols));
  CHECK(gold[3] == 7);
  check_exact(c.label("argmax"), index.read(), gold);  // on the stored values: exact
}

// Attention: one call over the whole key set, forward then backward, against the fp64
// reference on the same stored inputs; tolerance of tests/test_support.h.
void test_attention(Ctx& c) {
  const int batch = 2, n = 37, heads = 4, kv_heads = 2, d = 16;
  const AttnShape shape{batch, n, n, heads, kv_heads, d};
  std::vector<int32_t> seg, pos;
  test::packed_documents(batch, n, 15, 110, seg, pos);
  auto round_all = [&](std::vector<float> v) {
    for (auto& x : v) x = static_cast<float>(stored_as(c.dt, x));
    return v;
  };
  const auto q = round_all(test::random_vector(static_cast<std::size_t>(batch) * n * heads * d, 111));
  const auto k = round_all(test::random_vector(static_cast<std::size_t>(batch) * n * kv_heads * d, 112));
  const auto v = round_all(test::random_vector(k.size(), 113));
  const auto dout = round_all(test::random_vector(q.size(), 114));
  const AttnMaskArgs host_mask{pos.data(), seg.data(), pos.data(), seg.data(), true};
  test::FullAttention<double, double> gold(shape, host_mask, q, k, v, &dout);
  test::FullAttention<float, float> naive(shape, host_mask, q, k, v, &dout);

  auto up = [&](const std::vector<float>& x, DType t) {
    return std::make_unique<DevTensor>(c.be, t, std::vector<double>(x.begin(), x.end()));
  };
  auto filled = [&](std::size_t count, double value) {
    return std::make_unique<DevTensor>(c.be, DType::f32, std::vector<double>(count, value));
  };
  auto d_q = up(q, c.dt), d_k = up(k, c.dt), d_v = up(v, c.dt), d_dout = up(dout, c.dt),
       d_dout32 = up(dout, DType::f32);
  DevTensor d_pos(c.be, DType::i32, std::vector<double>(pos.begin(), pos.end())),
      d_seg(c.be, DType::i32, std::vector<double>(seg.begin(), seg.end()));
  auto out = filled(q.size(), 0.0), lse = filled(gold.lse.size(), -std::numeric_limits<double>::infinity()),
       delta = filled(gold.lse.size(), 0.0), dq = filled(q.size(), 0.0), dk = filled(k.size(), 0.0),
       dv = filled(v.size(), 0.0);
  AttnProblem problem = make_attn_problem(c.be, shape, true, c.dt);
  problem.tiling = {8, 16};  // several tiles of each kind (skipped, full, masked) at this size
  const AttnQueries queries{d_q->data<const float>(), d_pos.data<const int32_t>(), d_seg.data<const int32_t>()};
  const AttnKeys keys{d_k->data<const float>(), d_v->data<const float>(), queries.pos, queries.seg};
  c.be.attn_fwd_step(make_attn_fwd_args(problem, queries, keys, out->data<float>(), lse->data<float>()), {}, c.stream);
  c.be.attn_row_dot(
      AttnRowDotArgs{shape, out->data<const float>(), d_dout32->data<const float>(), delta->data<float>()}, c.stream);
  c.be.attn_bwd_step(
      make_attn_bwd_args(problem, queries, keys, d_dout->data<const float>(), lse->data<const float>(),
                         delta->data<const float>(), dq->data<float>(), dk->data<float>(), dv->data<float>()),
      {}, c.stream);
  c.be.synchronize(c.stream);
  check_close(c.label("attn_fwd_step out"), out->read(), gold.out, test::tolerance(naive.out, gold.out));
  check_close(c.label("attn_fwd_step lse"), lse->read(), gold.lse, test::tolerance(naive.lse, gold.lse));
  check_close(c.label("attn_bwd_step dq"), dq->read(), gold.dq, test::tolerance(naive.dq, gold.dq));
  check_close(c.label("attn_bwd_step dk"), dk->read(), gold.dk, test::tolerance(naive.dk, gold.dk));
  check_close(c.label("attn_bwd_step dv"), dv->read(), gold.dv, test::tolerance(naive.dv, gold.dv));
  // row_dot on the kernel's own out: a sum of head_dim products, gamma_{d+1} on sum |out dout|.
  const std::vector<double> out_now = out->read();
  const std::size_t n_rows = gold.lse.size();
  std::vector<double> gdelta(n_rows), abs_out(out_now.size()), abs_dout(dout.size());
  reference::attn_row_dot<double, double>(shape, out_now.data(), d_dout32->stored.data(), gdelta.data());
  for (std::size_t i = 0; i < out_now.size(); ++i) abs_out[i] = std::fabs(out_now[i]), abs_dout[i] = std::fabs(dout[i]);
  std::vector<double> s_delta(n_rows);
  reference::attn_row_dot<double, double>(shape, abs_out.data(), abs_dout.data(), s_delta.data());
  check_close(c.label("attn_row_dot"), delta->read(), gdelta, tol(d + 1, max_abs(s_delta), DType::f32, 0));

  // Merge of two partial results over disjoint key sets (fp32 accumulators).
  const std::size_t n_out = q.size();
  auto oa = random_values(n_out, 120), ob = random_values(n_out, 121), la = random_values(n_rows, 122, 5.0),
       lb = random_values(n_rows, 123, 5.0);
  la[0] = -std::numeric_limits<double>::infinity();
  lb[1] = -std::numeric_limits<double>::infinity();
  la[2] = lb[2] = -std::numeric_limits<double>::infinity();
  DevTensor doa(c.be, DType::f32, oa), dob(c.be, DType::f32, ob), dla(c.be, DType::f32, la), dlb(c.be, DType::f32, lb);
  c.be.attn_merge(
      AttnMergeArgs{shape, doa.data<float>(), dla.data<float>(), dob.data<const float>(), dlb.data<const float>()},
      c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> go = doa.stored, gl = dla.stored;
  reference::attn_merge<double, double>(shape, go.data(), gl.data(), dob.stored.data(), dlb.stored.data());
  std::vector<float> no(doa.stored.begin(), doa.stored.end()), nl(dla.stored.begin(), dla.stored.end()),
      nob(dob.stored.begin(), dob.stored.end()), nlb(dlb.stored.begin(), dlb.stored.end());
  reference::attn_merge<float, float>(shape, no.data(), nl.data(), nob.data(), nlb.data());
  check_close(c.label("attn_merge out"), doa.read(), go, test::tolerance(no, go));
  check_close(c.label("attn_merge lse"), dla.read(), gl, test::tolerance(nl, gl));
}

void run_all(Backend& be, DType dt) {
  std::unique_ptr<Stream> stream = be.create_stream();
  Ctx c{be, *stream, dt};
  test_gemm(c);
  test_fill_convert(c);
  test_elementwise(c);
  test_rmsnorm(c);
  test_rope(c);
  test_swiglu(c);
  test_embedding(c);
  test_cross_entropy(c);
  test_split_cross_entropy(c);
  test_adamw(c);
  test_reductions(c);
  test_argmax(c);
  test_attention(c);
}

}  // namespace

TEST_CASE("every kernel of every backend matches the fp64 reference, fp32 and bf16 storage", "[conformance]") {
  const std::vector<std::string> names = available_backend_names();
  CHECK(std::find(names.begin(), names.end(), "sim-gpu") != names.end());
  for (const std::string& name : test::backends_under_test()) {
    auto backend = create_backend(name);
    for (DType dt : {DType::f32, DType::bf16}) {
      INFO("backend " << name << ", storage " << dtype_name(dt));
      run_all(*backend, dt);
    }
  }
}

// What the tools ask a backend besides kernels (phase B): a resources line for run headers (the
// device-like backends name themselves), a GEMM rate measured on its own gemm kernel (positive and finite; small n:
// the emulated backends run it fiber by fiber), and a configuration warning that is a line or
// nothing.
TEST_CASE("every backend describes itself and measures its GEMM rate", "[conformance]") {
  for (const std::string& name : test::backends_under_test()) {
    INFO("backend " << name);
    auto backend = create_backend(name);
    const std::string line = backend->resources_line();
    CHECK(!line.empty());
    // The device-like backends (sim-gpu, the emulated and real GPUs) start with their name (cpu's
    // line is its thread counts).
    if (!backend->capabilities().host_accessible_device_memory) CHECK(line.rfind(name + ": ", 0) == 0);
    CHECK(line.find('\n') == std::string::npos);
    CHECK(backend->configuration_warning().find('\n') == std::string::npos);
    const double gflops = backend->measure_gemm_gflops(64, 1);
    CHECK(std::isfinite(gflops));
    CHECK(gflops > 0);
  }
}

TEST_CASE("the registry: names, descriptions, what the tools accept", "[conformance]") {
  for (const BackendInfo& b : backend_registry()) {
    CHECK(std::string(b.name).size() > 0);
    CHECK(std::string(b.description).size() > 0);
  }
  const auto tools = backend_names();
  CHECK(std::find(tools.begin(), tools.end(), "cpu") != tools.end());
  // sim-gpu runs the whole tools (model, ring and FSDP keep to device memory).
  CHECK(std::find(tools.begin(), tools.end(), "sim-gpu") != tools.end());
  CHECK(make_backend("sim-gpu")->name() == "sim-gpu");
  // An unknown name lists what --device takes and everything registered.
  CHECK_THROWS_WITH(make_backend("tpu"), Catch::Contains("unknown device 'tpu' (--device takes: cpu, cpu-reference, sim-gpu;") &&
                                             Catch::Contains("registered: cpu, cpu-reference, sim-gpu"));
  CHECK_THROWS_WITH(create_backend("tpu"), Catch::Contains("unknown device backend 'tpu' (registered: "));
  // A registered backend this machine cannot run (cuda / hip built without a device) says why.
  for (const BackendInfo& b : backend_registry()) {
    if (b.available()) continue;
    INFO("backend " << b.name);
    REQUIRE(b.unavailable_reason != nullptr);
    CHECK_THROWS_WITH(create_backend(b.name), Catch::Contains("not available on this machine: " + b.unavailable_reason()));
  }
  auto cpu = create_backend("cpu");
  auto sim = create_backend("sim-gpu");
  CHECK(cpu->capabilities().host_accessible_device_memory);
  CHECK_FALSE(cpu->capabilities().async_execution);
  CHECK_FALSE(sim->capabilities().host_accessible_device_memory);
  CHECK_FALSE(sim->capabilities().gpu_aware_mpi_possible);  // MPI takes the staging path
  CHECK(sim->capabilities().async_execution);
  CHECK(sim->capabilities().pinned_host_memory);
}
