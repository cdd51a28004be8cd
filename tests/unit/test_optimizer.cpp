// test_optimizer.cpp: the optimizer's arithmetic against values computed by hand in fp64, and
// the learning-rate schedules at their first step, warm-up end and last step (optimizer.h).
//  - AdamW: a constant gradient g gives m_t = (1 - b1^t) g, v_t = (1 - b2^t) g^2, so with the
//    bias correction every update is exactly g / (|g| + eps) + wd * w (decoupled decay, not on
//    norms); the clip multiplier c scales g before the moments. A varying gradient is checked
//    against the textbook recurrence written out here in fp64.
//    Tolerance: the optimizer stores w, m, v in fp32 after each step (fp64 arithmetic in
//    between), so each step adds at most one fp32 rounding (2^-24 relative) to w, m and v and,
//    through m / sqrt(v), about 1.5 roundings to the update; the bound used is
//    2 * FLT_EPSILON (= 2^-22, 4 roundings) x (|w| + lr |update|) per step, summed over steps.
//    The defects it must catch are far larger: no bias correction changes the first update by
//    a factor 1/sqrt(1 - b2) (2.2 here), decay on a norm by lr * wd * |w| = 1e-2 x |w|, a
//    missing clip multiplier halves m.
//  - The shards live in device memory and the optimizer runs as kernels (the adamw kernel, and
//    sum_squares reductions for the gradient norm and the finiteness checks), on every backend
//    available here: cpu, cpu-reference and sim-gpu (which faults on any host access to the
//    shards), and the GPU kernels under the emulation (cuda-emu, hip-emu). The gradient's sum of
//    squares is the fp64 sum in shard and index order, bit for bit, on the CPU backends; on
//    the GPU backends (fixed blocks, then in order) within the bound of any order of an fp64
//    sum of n non-negative terms, (n - 1) 2^-53 of the sum (the squares of fp32 values are exact
//    in fp64), and the same bits every call; a NaN or infinity in any weight or moment makes
//    the state non-finite.
//  - Schedules (1-based steps k = 1..N): exact values from the formulas in optimizer.h, compared
//    to 4 ulps of fp64 (one multiply and one divide, or a cosine of a rational multiple of pi).
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/exec_context.h"
#include "src/train/optimizer.h"

using namespace rw;
using train::LrSchedule;

namespace {

constexpr double kPi = 3.141592653589793;

// One parameter shard in a backend's device memory.
struct DeviceShard {
  DeviceShard(device::Backend& backend, const std::vector<float>& w, const std::vector<uint8_t>& decay_flags)
      : weights(backend, w.size()), grads(backend, w.size()), adam_m(backend, w.size()), adam_v(backend, w.size()),
        decay(backend, w.size()) {
    const std::vector<float> zeros(w.size(), 0.f);
    weights.upload(w.data());
    grads.upload(zeros.data());
    adam_m.upload(zeros.data());
    adam_v.upload(zeros.data());
    decay.upload(decay_flags.data());
  }
  train::ShardTensors tensors() {
    return {weights.data(), grads.data(), adam_m.data(), adam_v.data(), decay.data(),
            static_cast<int64_t>(weights.size())};
  }
  static std::vector<float> read(const device::DeviceArray<float>& a) {
    std::vector<float> out(a.size());
    a.download(out.data());
    return out;
  }
  void set(device::DeviceArray<float>& a, const std::vector<float>& values) { a.upload(values.data()); }
  device::DeviceArray<float> weights, grads, adam_m, adam_v;
  device::DeviceArray<uint8_t> decay;
};

bool near(double a, double b, double tol) { return std::fabs(a - b) <= tol; }

double ulps4(double x) { return 4 * DBL_EPSILON * std::fabs(x); }

}  // namespace

TEST_CASE("AdamW with a constant gradient: bias-corrected unit steps, decoupled decay, none on norms", "[optimizer]") {
  train::AdamWConfig c;
  c.beta1 = 0.9;
  c.beta2 = 0.95;
  c.eps = 1e-3;  // comparable to the smallest |g| below, so eps visibly enters the update
  c.weight_decay = 0.1;
  const double lr = 0.1;
  // Elements: decayed weights with gradients of either sign and size, a norm weight (no decay).
  const std::vector<float> w0 = {1.0f, -0.5f, 2.0f, 0.75f, 1.5f};
  const std::vector<float> g = {0.3f, -0.02f, 0.002f, -1.5f, 0.4f};
  const std::vector<uint8_t> decay = {1, 1, 1, 1, 0};
  for (const std::string& name : device::available_backend_names()) {
    auto backend = device::create_backend(name);
    train::Optimizer optimizer(device::ExecContext::on_default_stream(*backend));
    for (double multiplier : {1.0, 0.5}) {
      INFO("backend " << name << ", clip multiplier " << multiplier);
      DeviceShard s(*backend, w0, decay);
      std::vector<double> w(w0.begin(), w0.end()), tol(w0.size(), 0.0);
      for (int t = 1; t <= 3; ++t) {
        s.set(s.grads, g);
        REQUIRE(optimizer.adamw_step({s.tensors()}, c, lr, t, multiplier));
        const std::vector<float> sw = DeviceShard::read(s.weights), sm = DeviceShard::read(s.adam_m),
                                 sv = DeviceShard::read(s.adam_v);
        for (std::size_t i = 0; i < w.size(); ++i) {
          INFO("step " << t << ", element " << i);
          const double gi = multiplier * double(g[i]);
          // By hand: m_t / (1 - b1^t) = g and v_t / (1 - b2^t) = g^2 for a constant g.
          const double update = gi / (std::fabs(gi) + c.eps) + (decay[i] ? c.weight_decay * w[i] : 0.0);
          w[i] -= lr * update;
          tol[i] += 2 * FLT_EPSILON * (std::fabs(w[i]) + lr * std::fabs(update));
          CHECK(near(sw[i], w[i], tol[i]));
          const double m = (1 - std::pow(c.beta1, t)) * gi, v = (1 - std::pow(c.beta2, t)) * gi * gi;
          CHECK(near(sm[i], m, 2 * t * FLT_EPSILON * std::fabs(m)));
          CHECK(near(sv[i], v, 2 * t * FLT_EPSILON * v));
        }
      }
    }
  }
}

TEST_CASE("AdamW with a varying gradient follows the fp64 recurrence", "[optimizer]") {
  train::AdamWConfig c;  // the defaults: 0.9, 0.95, 1e-8, 0.1
  const double lr = 0.05;
  const std::vector<float> w0 = {0.2f, -1.0f, 0.6f, 1.0f};
  const std::vector<uint8_t> decay = {1, 1, 0, 1};
  const std::vector<std::vector<float>> grads = {
      {0.5f, -0.1f, 0.02f, 0.f}, {-0.25f, 0.3f, 0.01f, 0.f}, {0.1f, 0.1f, -0.05f, 0.f}, {1.0f, -0.7f, 0.2f, 0.f}};
  const double multipliers[] = {1.0, 0.8, 1.0, 0.25};
  for (const std::string& name : device::available_backend_names()) {
    INFO("backend " << name);
    auto backend = device::create_backend(name);
    train::Optimizer optimizer(device::ExecContext::on_default_stream(*backend));
    DeviceShard s(*backend, w0, decay);
    std::vector<double> w(w0.begin(), w0.end()), m(w.size(), 0), v(w.size(), 0), tol(w.size(), 0);
    std::vector<float> sw;
    for (int t = 1; t <= 4; ++t) {
      s.set(s.grads, grads[t - 1]);
      REQUIRE(optimizer.adamw_step({s.tensors()}, c, lr, t, multipliers[t - 1]));
      sw = DeviceShard::read(s.weights);
      for (std::size_t i = 0; i < w.size(); ++i) {
        INFO("step " << t << ", element " << i);
        const double gi = multipliers[t - 1] * double(grads[t - 1][i]);
        m[i] = c.beta1 * m[i] + (1 - c.beta1) * gi;
        v[i] = c.beta2 * v[i] + (1 - c.beta2) * gi * gi;
        const double m_hat = m[i] / (1 - std::pow(c.beta1, t)), v_hat = v[i] / (1 - std::pow(c.beta2, t));
        const double update = m_hat / (std::sqrt(v_hat) + c.eps) + (decay[i] ? c.weight_decay * w[i] : 0.0);
        w[i] -= lr * update;
        tol[i] += 2 * FLT_EPSILON * (std::fabs(w[i]) + lr * std::fabs(update));
        CHECK(near(sw[i], w[i], tol[i]));
      }
    }
    // The element with a zero gradient throughout moves by weight decay alone: (1 - lr wd)^4.
    CHECK(near(sw[3], std::pow(1 - lr * c.weight_decay, 4) * w0[3], 8 * FLT_EPSILON));
  }
}

TEST_CASE("AdamW reports updates that leave the finite range; the state check finds any NaN or infinity",
          "[optimizer]") {
  train::AdamWConfig c;
  for (const std::string& name : device::available_backend_names()) {
    INFO("backend " << name);
    auto backend = device::create_backend(name);
    train::Optimizer optimizer(device::ExecContext::on_default_stream(*backend));
    DeviceShard s(*backend, {1.f, 2.f}, {1, 1});
    s.set(s.grads, {1.f, 1.f});
    // lr 1e39: w - lr * (~1) overflows fp32 (max 3.4e38) for both elements.
    CHECK_FALSE(optimizer.adamw_step({s.tensors()}, c, 1e39, 1, 1.0));
    DeviceShard finite(*backend, {1.f, 2.f}, {1, 1}), other(*backend, {3.f, -4.f, 5.f}, {1, 0, 1});
    finite.set(finite.grads, {1.f, -1.f});
    CHECK(optimizer.adamw_step({finite.tensors(), other.tensors()}, c, 1e-3, 1, 1.0));
    CHECK(optimizer.state_is_finite({finite.tensors(), other.tensors()}));
    // One bad element of one tensor of one shard (the gradients do not count).
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    for (int which = 0; which < 4; ++which) {
      INFO("bad element in " << (which == 0 ? "weights" : which == 1 ? "adam_m" : which == 2 ? "adam_v" : "grads"));
      DeviceShard bad(*backend, {3.f, -4.f, 5.f}, {1, 0, 1});
      device::DeviceArray<float>* target[] = {&bad.weights, &bad.adam_m, &bad.adam_v, &bad.grads};
      bad.set(*target[which], {0.5f, which % 2 ? nan : -inf, 0.25f});
      CHECK(optimizer.state_is_finite({finite.tensors(), bad.tensors()}) == (which == 3));
    }
  }
}

TEST_CASE("the gradient's sum of squares is the fp64 sum in shard and index order, bit for bit on the CPU backends",
          "[optimizer]") {
  std::vector<float> g1(1000), g2(37);
  for (std::size_t i = 0; i < g1.size(); ++i) g1[i] = static_cast<float>(std::sin(0.37 * double(i)) * 1e-3 * double(i));
  for (std::size_t i = 0; i < g2.size(); ++i) g2[i] = static_cast<float>(1.0 / (1.0 + double(i)));
  double host = 0;
  for (float x : g1) host += double(x) * double(x);
  for (float x : g2) host += double(x) * double(x);
  for (const std::string& name : device::available_backend_names()) {
    INFO("backend " << name);
    auto backend = device::create_backend(name);
    train::Optimizer optimizer(device::ExecContext::on_default_stream(*backend));
    DeviceShard a(*backend, std::vector<float>(g1.size(), 0.f), std::vector<uint8_t>(g1.size(), 1)),
        b(*backend, std::vector<float>(g2.size(), 0.f), std::vector<uint8_t>(g2.size(), 1));
    a.set(a.grads, g1);
    b.set(b.grads, g2);
    const double got = optimizer.grad_sum_squares({a.tensors(), b.tensors()});
    const bool cpu_kernels = name == "cpu" || name == "cpu-reference" || name == "sim-gpu";
    if (cpu_kernels) CHECK(std::memcmp(&got, &host, sizeof(double)) == 0);
    const double n = double(g1.size() + g2.size());
    CHECK(std::fabs(got - host) <= (n - 1) * (DBL_EPSILON / 2) * host);
    CHECK(optimizer.grad_sum_squares({a.tensors(), b.tensors()}) == got);  // the scalar starts at 0 each time
  }
}

TEST_CASE("clip multiplier: clip / norm above the threshold, 1 at or below it or without clipping", "[optimizer]") {
  CHECK(train::clip_multiplier(4.0, 1.0) == 0.25);
  CHECK(train::clip_multiplier(1.0, 1.0) == 1.0);
  CHECK(train::clip_multiplier(0.5, 1.0) == 1.0);
  CHECK(train::clip_multiplier(4.0, 0.0) == 1.0);  // --clip-grad-norm 0: off
}

TEST_CASE("schedules: lr at the first step, the warm-up's end and the last step", "[optimizer][schedule]") {
  const double peak = 1e-3, min_lr = 1e-4;
  LrSchedule s;
  s.peak_lr = peak;
  s.min_lr = min_lr;
  s.warmup_steps = 4;
  s.total_steps = 10;

  SECTION("constant: peak everywhere, warmup-steps unused") {
    s.kind = LrSchedule::Kind::constant;
    for (int k : {1, 4, 5, 10}) CHECK(s.at(k) == peak);
  }
  SECTION("warmup: peak k / W up to step W (step 1 is not 0), then peak") {
    s.kind = LrSchedule::Kind::warmup;
    CHECK(near(s.at(1), peak / 4, ulps4(peak)));
    CHECK(near(s.at(2), peak / 2, ulps4(peak)));
    CHECK(near(s.at(4), peak, ulps4(peak)));
    CHECK(s.at(5) == peak);
    CHECK(s.at(10) == peak);
  }
  SECTION("cosine: the same warm-up, min-lr at the last step, the mean halfway through the decay") {
    s.kind = LrSchedule::Kind::cosine;
    CHECK(near(s.at(1), peak / 4, ulps4(peak)));
    CHECK(near(s.at(4), peak, ulps4(peak)));
    CHECK(near(s.at(5), min_lr + 0.5 * (peak - min_lr) * (1 + std::cos(kPi / 6)), ulps4(peak)));
    CHECK(near(s.at(7), 0.5 * (peak + min_lr), ulps4(peak)));  // (7 - 4) / (10 - 4) = 1/2
    CHECK(near(s.at(10), min_lr, ulps4(peak)));
    for (int k = 5; k <= 10; ++k) CHECK(s.at(k) < s.at(k - 1) + ulps4(peak));  // decays monotonically
  }
  SECTION("cosine without warm-up: just below peak at step 1, min-lr at the last") {
    s.kind = LrSchedule::Kind::cosine;
    s.warmup_steps = 0;
    CHECK(near(s.at(1), min_lr + 0.5 * (peak - min_lr) * (1 + std::cos(kPi / 10)), ulps4(peak)));
    CHECK(near(s.at(10), min_lr, ulps4(peak)));
  }
  SECTION("a warm-up longer than the stage: the lr ends below peak") {
    s.kind = LrSchedule::Kind::cosine;
    s.warmup_steps = 20;
    CHECK(near(s.at(1), peak / 20, ulps4(peak)));
    CHECK(near(s.at(10), peak / 2, ulps4(peak)));
  }
  SECTION("one-step stages") {
    s.total_steps = 1;
    s.warmup_steps = 0;
    s.kind = LrSchedule::Kind::cosine;
    CHECK(near(s.at(1), min_lr, ulps4(peak)));
    s.kind = LrSchedule::Kind::warmup;
    CHECK(s.at(1) == peak);
  }
}

TEST_CASE("describe_schedule says what runs", "[optimizer][schedule]") {
  LrSchedule s;
  s.peak_lr = 1e-3;
  s.min_lr = 1e-4;
  s.warmup_steps = 2;
  s.total_steps = 10;
  s.kind = LrSchedule::Kind::constant;
  const std::string constant = train::describe_schedule(s);
  INFO(constant);
  CHECK(constant.find("0.001 constant") != std::string::npos);
  CHECK(constant.find("warm-up") == std::string::npos);  // no warm-up runs
  CHECK(constant.find("unused") != std::string::npos);
  CHECK(constant.find("warning") == std::string::npos);

  s.kind = LrSchedule::Kind::warmup;
  const std::string warmup = train::describe_schedule(s);
  INFO(warmup);
  CHECK(warmup == "lr warm-up 0.0005 -> 0.001 over steps 1-2, then constant");

  s.kind = LrSchedule::Kind::cosine;
  const std::string cosine = train::describe_schedule(s);
  INFO(cosine);
  CHECK(cosine.find("lr warm-up 0.0005 -> 0.001 over steps 1-2, then cosine ") == 0);
  CHECK(cosine.find("-> 0.0001 over steps 3-10") != std::string::npos);

  s.warmup_steps = 40;
  const std::string long_warmup = train::describe_schedule(s);
  INFO(long_warmup);
  CHECK(long_warmup.find("warning") != std::string::npos);
  CHECK(long_warmup.find("0.00025") != std::string::npos);  // the lr the stage ends at: 10/40 of peak
}
