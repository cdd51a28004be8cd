// test_backend_streams.cpp: the asynchronous contract (streams, events, query, synchronize with
// a progress hook, async copies through pinned memory) on every available backend, and what
// makes sim-gpu strict: a host dereference of device memory faults, a missing event gives a
// wrong answer (and the event the right one), bad kernel and copy arguments are fatal naming
// the argument, a pinned buffer faults on host access while a copy uses it, release waits for
// pending work, fresh memory is NaN, and its results are bit-identical to the cpu backend's.
// Fatal paths and faults run in a forked child (fork_and_run).
// About 1 s.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "device/attention_builder.h"
#include "device/backend.h"
#include "device/sim/sim_gpu_backend.h"
#include "src/common/fatal.h"
#include "tests/fatal_in_child.h"
#include "tests/test_support.h"
#include "tests/unit/backends_under_test.h"

using namespace rw;
using namespace rw::device;
using rw::test::ChildResult;
using rw::test::fork_and_run;

namespace {

std::vector<float> download(Backend& be, const DeviceArray<float>& a) {
  std::vector<float> host(a.size());
  a.download(host.data());
  return host;
}

SimGpuOptions sim_options(int max_delay_us, uint64_t seed = 7) {
  SimGpuOptions o;
  o.max_delay_us = max_delay_us;
  o.seed = seed;
  return o;
}

// Producer on s1: x = 0, then n_adds times x += 1; consumer on s2: y = 0, y += x. With
// `ordered`, s2 waits on an event recorded on s1 after the producer's work.
std::vector<float> produce_consume(Backend& be, int n_adds, bool ordered) {
  const int64_t n = 4096;
  auto s1 = be.create_stream(), s2 = be.create_stream();
  auto produced = be.create_event();
  DeviceArray<float> x(be, n), y(be, n), ones(be, n);
  be.fill(FillArgs{ones.view({n}), 1.0}, *s1);
  be.fill(FillArgs{x.view({n}), 0.0}, *s1);
  for (int i = 0; i < n_adds; ++i) be.add(AddArgs{ones.view({n}), x.view({n})}, *s1);
  be.record(*produced, *s1);
  be.fill(FillArgs{y.view({n}), 0.0}, *s2);
  if (ordered) be.wait(*s2, *produced);
  be.add(AddArgs{x.view({n}), y.view({n})}, *s2);
  be.synchronize(*s2);
  be.synchronize(*s1);
  return download(be, y);
}

bool all_equal(const std::vector<float>& v, float value) {
  for (float x : v)
    if (!(x == value)) return false;
  return true;
}

}  // namespace

TEST_CASE("events order work across two streams on every backend", "[streams]") {
  for (const std::string& name : test::backends_under_test()) {
    INFO("backend " << name);
    auto be = create_backend(name);
    CHECK(all_equal(produce_consume(*be, 6, true), 6.f));
    // Query: complete once the stream has been synchronised; a never-recorded event is complete.
    auto s = be->create_stream();
    auto e = be->create_event(), never = be->create_event();
    CHECK(be->query(*never));
    DeviceArray<float> a(*be, 100);
    be->fill(FillArgs{a.view({100}), 2.0}, *s);
    be->record(*e, *s);
    be->synchronize(*s);
    CHECK(be->query(*e));
    be->host_wait(*e);     // returns at once
    be->wait(*s, *never);  // a no-op
    // synchronize calls the hook at least once.
    int calls = 0;
    be->synchronize(*s, ProgressHook{[](void* c) { ++*static_cast<int*>(c); }, &calls});
    CHECK(calls >= 1);
  }
}

TEST_CASE("async copies through pinned host memory on every backend", "[streams]") {
  for (const std::string& name : test::backends_under_test()) {
    INFO("backend " << name);
    auto be = create_backend(name);
    auto copy_stream = be->create_stream(), compute = be->create_stream();
    auto uploaded = be->create_event(), computed = be->create_event();
    const int64_t n = 1000;
    float* pinned = static_cast<float*>(be->allocate(n * sizeof(float), MemoryKind::pinned_host));
    for (int64_t i = 0; i < n; ++i) pinned[i] = static_cast<float>(i);
    DeviceArray<float> x(*be, n);
    // Staging path: H2D on the copy stream, compute waits, D2H back on the copy stream.
    be->copy_async(x.data(), pinned, n * sizeof(float), *copy_stream);
    be->record(*uploaded, *copy_stream);
    be->wait(*compute, *uploaded);
    ScaleArgs sc;
    sc.alpha = 2.f;
    sc.x = x.view({n});
    be->scale(sc, *compute);
    be->record(*computed, *compute);
    be->wait(*copy_stream, *computed);
    be->copy_async(pinned, x.data(), n * sizeof(float), *copy_stream);
    be->synchronize(*copy_stream);
    int wrong = 0;
    for (int64_t i = 0; i < n; ++i) wrong += pinned[i] != 2.f * static_cast<float>(i);
    CHECK(wrong == 0);
    be->release(pinned);
  }
}

TEST_CASE("sim-gpu: the host thread calls the hook while it waits", "[streams][sim-gpu]") {
  SimGpuBackend be(sim_options(0));
  auto s = be.create_stream();
  DeviceArray<float> a(be, 64);
  auto gate = be.hold(*s);
  be.fill(FillArgs{a.view({64}), 1.0}, *s);
  auto e = be.create_event();
  be.record(*e, *s);
  CHECK_FALSE(be.query(*e));  // held: the work cannot have run
  // The hook opens the gate on its fifth call: synchronize returns only after that.
  struct HookState {
    int calls = 0;
    SimGpuBackend::Gate* gate;
  } state{0, gate.get()};
  be.synchronize(*s, ProgressHook{[](void* c) {
                                    auto* st = static_cast<HookState*>(c);
                                    if (++st->calls == 5) st->gate->open();
                                  },
                                  &state});
  CHECK(state.calls >= 5);
  CHECK(be.query(*e));
  // host_wait likewise.
  auto gate2 = be.hold(*s);
  be.fill(FillArgs{a.view({64}), 3.0}, *s);
  be.record(*e, *s);
  state = HookState{0, gate2.get()};
  be.host_wait(*e, ProgressHook{[](void* c) {
                                  auto* st = static_cast<HookState*>(c);
                                  if (++st->calls == 3) st->gate->open();
                                },
                                &state});
  CHECK(state.calls >= 3);
  CHECK(all_equal(download(be, a), 3.f));
}

TEST_CASE("sim-gpu exposes a missing event and is right with it", "[streams][sim-gpu]") {
  // Random delays up to 2 ms before every operation: without the event the consumer's add
  // runs while the producer is still adding (or before x was even written: NaN), so y != 8.
  SimGpuBackend be(sim_options(2000, 11));
  int wrong_without = 0, wrong_with = 0;
  const int trials = 6;
  for (int t = 0; t < trials; ++t) {
    wrong_without += !all_equal(produce_consume(be, 8, false), 8.f);
    wrong_with += !all_equal(produce_consume(be, 8, true), 8.f);
  }
  CHECK(wrong_without > 0);
  CHECK(wrong_with == 0);
}

TEST_CASE("sim-gpu: a host dereference of device memory faults", "[sim-gpu]") {
  SimGpuBackend be(sim_options(0));
  DeviceArray<float> a(be, 1000);
  be.fill(a.data(), a.size(), 1.f);
  be.synchronize();
  REQUIRE(be.is_device_pointer(a.data()));
  const float* interior = a.data() + 500;
  ChildResult read = fork_and_run([&] {
    volatile float v = *static_cast<const volatile float*>(interior);
    (void)v;
  });
  CHECK(read.signaled);
  CHECK(read.signal == SIGSEGV);
  ChildResult write = fork_and_run([&] { *static_cast<volatile float*>(a.data()) = 2.f; });
  CHECK(write.signaled);
  CHECK(write.signal == SIGSEGV);
  // The legitimate path still works.
  CHECK(all_equal(download(be, a), 1.f));
}

TEST_CASE("sim-gpu: a pinned buffer faults on host access while a copy is pending", "[sim-gpu]") {
  SimGpuBackend be(sim_options(0));
  auto s = be.create_stream();
  float* pinned = static_cast<float*>(be.allocate(256 * sizeof(float), MemoryKind::pinned_host));
  for (int i = 0; i < 256; ++i) pinned[i] = static_cast<float>(i);
  DeviceArray<float> x(be, 256);
  auto gate = be.hold(*s);
  be.copy_async(x.data(), pinned, 256 * sizeof(float), *s);  // pending until the gate opens
  // Reusing the staging buffer (or sending it) before the copy's event: a fault, not a race.
  ChildResult r = fork_and_run([&] { pinned[3] = -1.f; });
  CHECK(r.signaled);
  CHECK(r.signal == SIGSEGV);
  gate->open();
  be.synchronize(*s);
  pinned[3] = -1.f;  // allowed again once the copy has finished
  std::vector<float> back = download(be, x);
  CHECK(back[3] == 3.f);
  CHECK(back[255] == 255.f);
  be.release(pinned);
}

TEST_CASE("sim-gpu: bad kernel and copy arguments are fatal and name the argument", "[sim-gpu]") {
  SimGpuBackend be(sim_options(0));
  DeviceArray<float> a(be, 100), b(be, 100);
  std::vector<float> host(100, 1.f);
  auto s = be.create_stream();

  // A host pointer as a kernel argument.
  ChildResult r = fork_and_run([&] { be.add(AddArgs{view(host.data(), {100}), a.view({100})}, *s); });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message,
             Catch::Contains("kernel add") && Catch::Contains("'x'") && Catch::Contains("not sim-gpu device memory"));
  // An extent past the end of the allocation (an interior pointer 10 elements in).
  r = fork_and_run([&] { be.add(AddArgs{view(static_cast<const float*>(a.data() + 10), {100}), b.view({100})}, *s); });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message, Catch::Contains("'x'") && Catch::Contains("past the end"));
  // The legacy entry points are checked the same way.
  r = fork_and_run(
      [&] { be.gemm(Transpose::no, Transpose::no, 2, 2, 2, 1.f, host.data(), 2, b.data(), 2, 0.f, a.data(), 2); });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message, Catch::Contains("kernel gemm") && Catch::Contains("'a'"));
  // Shape and dtype checks (every backend, before the backend sees the call).
  r = fork_and_run([&] {
    RmsNormFwdArgs f;
    DeviceArray<float> inv(be, 10);
    f.x = a.view({10, 10});
    f.w = b.view({9});
    f.y = b.view({10, 10});
    f.inv_rms = inv.view({10});
    be.rmsnorm_fwd(f, *s);
  });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message, Catch::Contains("rmsnorm_fwd") && Catch::Contains("'w' has shape [9], expected [10]"));
  // Async copy from pageable host memory.
  r = fork_and_run([&] { be.copy_async(a.data(), host.data(), 400, *s); });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message, Catch::Contains("'src'") && Catch::Contains("not pinned"));
  // A synchronous copy whose direction does not match its pointers.
  r = fork_and_run([&] { be.copy_to_device(a.data(), b.data(), 400); });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message, Catch::Contains("copy_to_device") && Catch::Contains("'src' is sim-gpu device memory"));
  r = fork_and_run([&] { be.copy_to_host(host.data(), host.data(), 400); });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message, Catch::Contains("copy_to_host") && Catch::Contains("'src'"));
  // Use after release.
  r = fork_and_run([&] {
    float* p = static_cast<float*>(be.allocate(400));
    be.release(p);
    be.fill(FillArgs{view(p, {100}), 0.0}, *s);
  });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message, Catch::Contains("'x'") && Catch::Contains("not inside a live device allocation"));
  // Release of something that is not an allocation.
  r = fork_and_run([&] { be.release(a.data() + 1); });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message, Catch::Contains("not the start of a live"));
  // A stream of another backend.
  r = fork_and_run([&] {
    auto cpu = create_backend("cpu");
    be.fill(FillArgs{a.view({100}), 0.0}, cpu->default_stream());
  });
  CHECK(r.exit_code == 97);
  CHECK_THAT(r.fatal_message, Catch::Contains("belongs to another backend"));
}

TEST_CASE("sim-gpu: fresh memory is NaN, release waits for pending work", "[sim-gpu]") {
  SimGpuBackend be(sim_options(0));
  DeviceArray<float> fresh(be, 33);
  for (float x : download(be, fresh)) CHECK(std::isnan(x));
  DeviceArray<int32_t> ints(be, 5);
  std::vector<int32_t> iv(5);
  ints.download(iv.data());
  for (int32_t x : iv) CHECK(x > 1000000000);  // an uninitialised token id is far out of range

  auto s = be.create_stream();
  float* p = static_cast<float*>(be.allocate(1 << 20));
  auto gate = be.hold(*s);
  be.fill(FillArgs{view(p, {1 << 18}), 1.0}, *s);
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    gate->open();
  });
  const long waits_before = be.stats().release_waits;
  be.release(p);  // blocks until the fill has run
  opener.join();
  CHECK(be.stats().release_waits == waits_before + 1);
  CHECK(be.stats().live_device_bytes == 33 * sizeof(float) + 5 * sizeof(int32_t));
}

TEST_CASE("sim-gpu results are bit-identical to the cpu backend's", "[sim-gpu]") {
  // A small chain: gemm, rmsnorm, swiglu, attention forward; the same kernels run underneath.
  auto run = [](Backend& be) {
    const int64_t n = 24, h = 32;
    auto in = test::random_vector(n * h, 3), w = test::random_vector(h * h, 4), g = test::random_vector(n * h, 5);
    DeviceArray<float> x(be, n * h), wt(be, h * h), y(be, n * h), nrm(be, n * h), inv(be, n), gate(be, n * h),
        act(be, n * h), lse(be, 2 * n), out(be, n * h);
    DeviceArray<int32_t> pos(be, n), seg(be, n);
    std::vector<int32_t> p(n), sg(n, 0);
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(i);
    x.upload(in.data());
    wt.upload(w.data());
    gate.upload(g.data());
    pos.upload(p.data());
    seg.upload(sg.data());
    auto s = be.create_stream();
    GemmArgs mm;
    mm.trans_b = Transpose::yes;
    mm.a = x.view({n, h});
    mm.b = wt.view({h, h});
    mm.c = y.view({n, h});
    be.gemm(mm, *s);
    RmsNormFwdArgs rn;
    rn.x = y.view({n, h});
    rn.w = wt.view({h});  // the first row of w as norm weights (a view of part of an array)
    rn.w.data = wt.data();
    rn.y = nrm.view({n, h});
    rn.inv_rms = inv.view({n});
    be.rmsnorm_fwd(rn, *s);
    be.swiglu_fwd(SwigluFwdArgs{gate.view({n * h}), nrm.view({n * h}), act.view({n * h})}, *s);
    be.fill(FillArgs{out.view({n * h}), 0.0}, *s);
    be.fill(FillArgs{lse.view({2 * n}), -INFINITY}, *s);
    const AttnShape shape{1, static_cast<int>(n), static_cast<int>(n), 2, 1, 16};
    AttnProblem problem = make_attn_problem(be, shape, true);
    problem.tiling = {8, 8};
    be.attn_fwd_step(make_attn_fwd_args(problem, {act.data(), pos.data(), seg.data()},
                                        {nrm.data(), y.data(), pos.data(), seg.data()}, out.data(), lse.data()),
                     {}, *s);
    be.synchronize(*s);
    std::vector<float> all = download(be, act), o = download(be, out);
    all.insert(all.end(), o.begin(), o.end());
    return all;
  };
  auto cpu = create_backend("cpu");
  SimGpuBackend sim(sim_options(100));
  const auto a = run(*cpu), b = run(sim);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}
