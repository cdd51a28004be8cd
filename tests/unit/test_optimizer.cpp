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
//  - Schedules (1-based steps k = 1..N): exact values from the formulas in optimizer.h, compared
//    to 4 ulps of fp64 (one multiply and one divide, or a cosine of a rational multiple of pi).
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <memory>
#include <vector>

#include "device/backend.h"
#include "src/train/optimizer.h"

using namespace rw;
using train::LrSchedule;

namespace {

constexpr double kPi = 3.141592653589793;

// The shards live in device memory (FsdpParams); a cpu backend's is host memory, which
// adamw_update's host loops and these checks read directly.
device::Backend& cpu_backend() {
  static std::unique_ptr<device::Backend> backend = device::create_backend("cpu");
  return *backend;
}

template <class T>
device::DeviceArray<T> device_copy(const std::vector<T>& host) {
  device::DeviceArray<T> a(cpu_backend(), host.size());
  a.upload(host.data());
  return a;
}

train::FsdpParams::Shard make_shard(const std::vector<float>& w, const std::vector<uint8_t>& decay) {
  train::FsdpParams::Shard s;
  s.begin = 0;
  s.end = static_cast<int64_t>(w.size());
  s.shard_count = s.end;
  s.weights = device_copy(w);
  s.grads = device_copy(std::vector<float>(w.size(), 0.f));
  s.adam_m = device_copy(std::vector<float>(w.size(), 0.f));
  s.adam_v = device_copy(std::vector<float>(w.size(), 0.f));
  s.decay = device_copy(decay);
  return s;
}

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
  for (double multiplier : {1.0, 0.5}) {
    INFO("clip multiplier " << multiplier);
    auto s = make_shard(w0, decay);
    std::vector<double> w(w0.begin(), w0.end()), tol(w0.size(), 0.0);
    for (int t = 1; t <= 3; ++t) {
      s.grads.upload(g.data());
      REQUIRE(train::adamw_update(s, c, lr, t, multiplier) == 0);
      for (std::size_t i = 0; i < w.size(); ++i) {
        INFO("step " << t << ", element " << i);
        const double gi = multiplier * double(g[i]);
        // By hand: m_t / (1 - b1^t) = g and v_t / (1 - b2^t) = g^2 for a constant g.
        const double update = gi / (std::fabs(gi) + c.eps) + (decay[i] ? c.weight_decay * w[i] : 0.0);
        w[i] -= lr * update;
        tol[i] += 2 * FLT_EPSILON * (std::fabs(w[i]) + lr * std::fabs(update));
        CHECK(near(s.weights.data()[i], w[i], tol[i]));
        const double m = (1 - std::pow(c.beta1, t)) * gi, v = (1 - std::pow(c.beta2, t)) * gi * gi;
        CHECK(near(s.adam_m.data()[i], m, 2 * t * FLT_EPSILON * std::fabs(m)));
        CHECK(near(s.adam_v.data()[i], v, 2 * t * FLT_EPSILON * v));
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
  auto s = make_shard(w0, decay);
  std::vector<double> w(w0.begin(), w0.end()), m(w.size(), 0), v(w.size(), 0), tol(w.size(), 0);
  for (int t = 1; t <= 4; ++t) {
    s.grads.upload(grads[t - 1].data());
    REQUIRE(train::adamw_update(s, c, lr, t, multipliers[t - 1]) == 0);
    for (std::size_t i = 0; i < w.size(); ++i) {
      INFO("step " << t << ", element " << i);
      const double gi = multipliers[t - 1] * double(grads[t - 1][i]);
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * gi;
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * gi * gi;
      const double m_hat = m[i] / (1 - std::pow(c.beta1, t)), v_hat = v[i] / (1 - std::pow(c.beta2, t));
      const double update = m_hat / (std::sqrt(v_hat) + c.eps) + (decay[i] ? c.weight_decay * w[i] : 0.0);
      w[i] -= lr * update;
      tol[i] += 2 * FLT_EPSILON * (std::fabs(w[i]) + lr * std::fabs(update));
      CHECK(near(s.weights.data()[i], w[i], tol[i]));
    }
  }
  // The element with a zero gradient throughout moves by weight decay alone: (1 - lr wd)^4.
  CHECK(near(s.weights.data()[3], std::pow(1 - lr * c.weight_decay, 4) * w0[3], 8 * FLT_EPSILON));
}

TEST_CASE("AdamW reports updates that leave the finite range", "[optimizer]") {
  train::AdamWConfig c;
  auto s = make_shard({1.f, 2.f}, {1, 1});
  s.grads.upload(std::vector<float>{1.f, 1.f}.data());
  // lr 1e39: w - lr * (~1) overflows fp32 (max 3.4e38) for both elements.
  CHECK(train::adamw_update(s, c, 1e39, 1, 1.0) == 2);
  auto finite = make_shard({1.f, 2.f}, {1, 1});
  finite.grads.upload(std::vector<float>{1.f, -1.f}.data());
  CHECK(train::adamw_update(finite, c, 1e-3, 1, 1.0) == 0);
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
