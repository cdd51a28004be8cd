// test_model_ops.cpp: every model op's backward against central finite differences in fp64,
// forwards against their textbook formulas, and the whole fp64 transformer's gradient against
// finite differences on a tiny model.
//
// Finite-difference basis: with step e the central difference has truncation error
// e^2/6 * |third derivative| and rounding error about eps64 * |f| / e. With e = 1e-5, third
// derivatives <= 1e2 and |f| <= 1e2 both are below 2e-9; we allow 1e-8 absolute plus 1e-6
// relative.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <vector>

#include "src/attention/attention_ops.h"
#include "src/data/global_batch.h"
#include "src/data/synthetic_source.h"
#include "src/model/local_params.h"
#include "src/model/matmul.h"
#include "src/model/ops.h"
#include "src/model/reference_transformer.h"
#include "tests/test_support.h"

using namespace rw;
using namespace rw::model;

namespace {

constexpr double kStep = 1e-5;
bool fd_close(double analytic, double numeric) { return std::fabs(analytic - numeric) <= 1e-8 + 1e-6 * std::fabs(numeric); }

std::vector<double> randd(std::size_t n, uint64_t seed, double scale = 1.0) {
  auto f = test::random_vector(n, seed, static_cast<float>(scale));
  return std::vector<double>(f.begin(), f.end());
}

// Checks d(loss)/d(x[i]) for every i against central differences.
void check_gradient(std::vector<double>& x, const std::vector<double>& analytic, const std::function<double()>& loss,
                    const char* what) {
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + kStep;
    const double up = loss();
    x[i] = saved - kStep;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * kStep);
    INFO(what << "[" << i << "]: analytic " << analytic[i] << ", numeric " << numeric);
    REQUIRE(fd_close(analytic[i], numeric));
  }
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

TEST_CASE("rmsnorm forward formula and backward by finite differences", "[model][ops]") {
  const int rows = 3, cols = 7;
  auto x = randd(rows * cols, 1), w = randd(cols, 2), r = randd(rows * cols, 3);
  std::vector<double> y(rows * cols), inv(rows), dx(rows * cols), dw(cols, 0.0);
  rmsnorm_forward(x.data(), w.data(), y.data(), inv.data(), rows, cols, 1e-5);
  for (int i = 0; i < rows; ++i) {
    double ms = 0;
    for (int c = 0; c < cols; ++c) ms += x[i * cols + c] * x[i * cols + c] / cols;
    for (int c = 0; c < cols; ++c) CHECK(std::fabs(y[i * cols + c] - x[i * cols + c] / std::sqrt(ms + 1e-5) * w[c]) < 1e-14);
  }
  rmsnorm_backward(x.data(), w.data(), inv.data(), r.data(), dx.data(), dw.data(), rows, cols);
  auto loss = [&] {
    rmsnorm_forward(x.data(), w.data(), y.data(), inv.data(), rows, cols, 1e-5);
    return dot(y, r);
  };
  check_gradient(x, dx, loss, "rmsnorm dx");
  check_gradient(w, dw, loss, "rmsnorm dw");
}

TEST_CASE("rope is Hugging Face's rotate-half rotation; backward is its transpose", "[model][ops]") {
  const int tokens = 5, heads = 2, d = 8;
  const double theta = 500.0;
  auto x = randd(tokens * heads * d, 4), r = randd(tokens * heads * d, 5);
  std::vector<int32_t> pos = {0, 3, 7, 100, 12345};
  std::vector<double> y = x;
  rope_forward(y.data(), pos.data(), tokens, heads, d, theta);
  // Hugging Face: emb = cat(freqs, freqs); out = x * cos(emb) + rotate_half(x) * sin(emb),
  // rotate_half(x) = cat(-x2, x1).
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < d; ++i) {
        const int j = i % (d / 2);
        const double angle = pos[t] * std::pow(theta, -2.0 * j / d);
        const double* xh = &x[(t * heads + h) * d];
        const double rotated = i < d / 2 ? -xh[i + d / 2] : xh[i - d / 2];
        CHECK(std::fabs(y[(t * heads + h) * d + i] - (xh[i] * std::cos(angle) + rotated * std::sin(angle))) < 1e-12);
      }
  std::vector<double> dx = r;
  rope_backward(dx.data(), pos.data(), tokens, heads, d, theta);
  auto loss = [&] {
    std::vector<double> z = x;
    rope_forward(z.data(), pos.data(), tokens, heads, d, theta);
    return dot(z, r);
  };
  check_gradient(x, dx, loss, "rope dx");
}

TEST_CASE("swiglu backward by finite differences", "[model][ops]") {
  const int n = 11;
  auto g = randd(n, 6, 3.0), u = randd(n, 7), r = randd(n, 8);
  std::vector<double> a(n), dg(n), du(n);
  swiglu_forward(g.data(), u.data(), a.data(), n);
  for (int i = 0; i < n; ++i) CHECK(std::fabs(a[i] - g[i] / (1 + std::exp(-g[i])) * u[i]) < 1e-14);
  swiglu_backward(g.data(), u.data(), r.data(), dg.data(), du.data(), n);
  auto loss = [&] {
    swiglu_forward(g.data(), u.data(), a.data(), n);
    return dot(a, r);
  };
  check_gradient(g, dg, loss, "swiglu dg");
  check_gradient(u, du, loss, "swiglu du");
}

TEST_CASE("cross entropy value and gradient; ignored targets and weights", "[model][ops]") {
  const int n = 4, vocab = 6;
  auto logits = randd(n * vocab, 9, 3.0);
  std::vector<int32_t> targets = {2, -1, 5, 0};
  std::vector<float> weights = {1.f, 1.f, 0.5f, 2.f};
  std::vector<double> dlogits(n * vocab);
  const double scale = 0.25;
  double loss = cross_entropy(logits.data(), targets.data(), weights.data(), n, vocab, scale, dlogits.data());
  double want = 0;
  for (int t = 0; t < n; ++t) {
    if (targets[t] < 0) continue;
    double s = 0;
    for (int j = 0; j < vocab; ++j) s += std::exp(logits[t * vocab + j]);
    want += weights[t] * (std::log(s) - logits[t * vocab + targets[t]]);
  }
  CHECK(std::fabs(loss - want) < 1e-12);
  for (int j = 0; j < vocab; ++j) CHECK(dlogits[1 * vocab + j] == 0.0);
  auto f = [&] { return scale * cross_entropy(logits.data(), targets.data(), weights.data(), n, vocab, 0.0, static_cast<double*>(nullptr)); };
  check_gradient(logits, dlogits, f, "cross-entropy dlogits");
}

TEST_CASE("embedding gathers rows and scatters gradients", "[model][ops]") {
  const int vocab = 5, hidden = 3;
  auto table = randd(vocab * hidden, 10);
  std::vector<int32_t> tokens = {4, 0, 4};
  std::vector<double> out(3 * hidden), dtable(vocab * hidden, 0.0);
  embedding_forward(table.data(), tokens.data(), out.data(), 3, hidden);
  for (int c = 0; c < hidden; ++c) CHECK(out[2 * hidden + c] == table[4 * hidden + c]);
  std::vector<double> dout = randd(3 * hidden, 11);
  embedding_backward(tokens.data(), dout.data(), dtable.data(), 3, hidden, vocab);
  for (int c = 0; c < hidden; ++c) {
    CHECK(std::fabs(dtable[4 * hidden + c] - (dout[c] + dout[2 * hidden + c])) < 1e-15);
    CHECK(dtable[1 * hidden + c] == 0.0);
  }
}

TEST_CASE("the fp64 transformer's gradient matches finite differences", "[model]") {
  const LlamaConfig config = test::tiny_llama(13, 8, 12, 2, 2, 1, 100.0);
  data::SyntheticOptions opts;
  opts.seq_len = 10;
  opts.global_sequences = 2;
  opts.vocab_size = 13;
  opts.packed = true;
  const data::GlobalBatch g = data::synthetic_global_batch(opts, 0);
  const data::LocalBatch batch = data::slice_global_batch(g, 1, 0, 1, 0, Layout::contiguous);

  LocalParams<double> params(config, 7);
  // Projections larger than the 0.02 initialisation and norm weights away from 1, so that every
  // path carries signal (scores stay O(1): the softmax is not saturated, q/k gradients live).
  for (std::size_t u = 0; u < params.weights.size(); ++u) {
    const ParamUnit& spec = params.units()[u];
    for (std::size_t t = 0; t < spec.tensors.size(); ++t)
      for (int64_t i = 0; i < spec.tensors[t].count(); ++i) {
        double& w = params.weights[u][spec.offsets[t] + i];
        w = spec.tensors[t].is_norm ? 1.0 + 0.3 * std::sin(1.7 * double(i + t)) : 15.0 * w;
      }
  }
  ReferenceAttentionOp<double> attention(true);
  CpuMatMulDouble matmul;
  TransformerOptions options;
  options.ffn_chunk_tokens = 7;   // several chunks, one ragged
  options.loss_chunk_tokens = 6;
  ReferenceTransformer<double> model(config, params, attention, matmul, options);
  const double scale = 0.1;
  model.forward_backward(batch, scale);
  auto loss = [&] { return scale * model.forward(batch, nullptr); };
  for (std::size_t u = 0; u < params.weights.size(); ++u) {
    const ParamUnit& spec = params.units()[u];
    for (std::size_t t = 0; t < spec.tensors.size(); ++t) {
      // A few entries of every tensor: first, middle, last.
      for (int64_t i : {int64_t(0), spec.tensors[t].count() / 2, spec.tensors[t].count() - 1}) {
        double& w = params.weights[u][spec.offsets[t] + i];
        const double saved = w;
        w = saved + kStep;
        const double up = loss();
        w = saved - kStep;
        const double down = loss();
        w = saved;
        const double numeric = (up - down) / (2 * kStep), analytic = params.grads[u][spec.offsets[t] + i];
        INFO(spec.tensors[t].name << "[" << i << "]: analytic " << analytic << ", numeric " << numeric);
        CHECK(fd_close(analytic, numeric));
        CHECK(std::fabs(numeric) > 1e-6);  // the entry carries signal: the check is not vacuous
      }
    }
  }
}
