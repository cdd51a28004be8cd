// test_ring_attention.cpp: the ring (any number of ranks, every layout) against the fp64
// single-rank reference, forward and backward, with causal masks, packed documents and GQA;
// and bit-for-bit repeatability. Run under mpirun with 1, 2, 3 and 4 ranks.
// Every rank builds the same global inputs, takes its own tokens in ring layout, runs the ring,
// and checks its part of each result against the reference (tolerance: tests/test_support.h).
// Each case runs on every execution setting (kSettings): cpu with MPI on the device buffers
// (direct), cpu staged through pinned buffers, and sim-gpu (staged; kernels later, on worker
// threads, after random delays, so a missing ordering point gives a wrong answer), with the
// ring's work on a compute stream of its own. A sim-gpu test removes one ordering point through
// the test hook and sees the failure.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>

#include "device/backend.h"
#include "device/sim/sim_gpu_backend.h"
#include "mpi/ring_exchange.h"
#include "mpi/runtime.h"
#include "src/attention/layout.h"
#include "src/attention/ring_attention.h"
#include "tests/test_support.h"

using namespace rw;
using namespace rw::test;

namespace {

// Where and how the ring runs.
struct Setting {
  std::string backend;  // "cpu", "cpu-reference", "sim-gpu"
  mpi::PathChoice path;
  bool wait_each_step = false;
  std::string skip_event = "none";  // the test hook (RingOptions::test_skip_event)
};
const Setting kSettings[] = {{"cpu", mpi::PathChoice::automatic},
                             {"cpu", mpi::PathChoice::staged},
                             {"sim-gpu", mpi::PathChoice::automatic}};

struct RingCase {
  Layout layout;
  bool causal, packed;
  int batch, seq, heads, kv_heads, head_dim, block_q, block_k;
  Setting setting = kSettings[0];
};

// sim-gpu with random delays before every operation (RINGWORLD_SIM_GPU_DELAY_US, or 100 us),
// so kernels and copies run late and out of step with the host.
std::unique_ptr<device::Backend> create_test_backend(const std::string& name) {
  if (name != "sim-gpu") return device::create_backend(name);
  device::SimGpuOptions o = device::SimGpuOptions::from_environment();
  if (o.max_delay_us == 0) o.max_delay_us = 100;
  o.seed = 7 + static_cast<uint64_t>(mpi::world_rank());
  return std::make_unique<device::SimGpuBackend>(o);
}

struct RingResult {
  std::vector<float> out, lse, dq, dk, dv;
  mpi::TransferPath path = mpi::TransferPath::direct;
};

// Picks the local tokens (in local order) of a [batch, seq, width] tensor.
template <class T>
std::vector<T> take_local(const std::vector<T>& x, int batch, int seq, int width, const std::vector<int64_t>& idx) {
  std::vector<T> out(static_cast<std::size_t>(batch) * idx.size() * width);
  for (int b = 0; b < batch; ++b)
    for (std::size_t i = 0; i < idx.size(); ++i)
      std::memcpy(&out[(b * idx.size() + i) * width], &x[(static_cast<std::size_t>(b) * seq + idx[i]) * width],
                  sizeof(T) * width);
  return out;
}

// lse is [batch, heads, seq]: token axis in the middle.
template <class T>
std::vector<T> take_local_lse(const std::vector<T>& x, int batch, int heads, int seq, const std::vector<int64_t>& idx) {
  std::vector<T> out(static_cast<std::size_t>(batch) * heads * idx.size());
  for (int bh = 0; bh < batch * heads; ++bh)
    for (std::size_t i = 0; i < idx.size(); ++i) out[bh * idx.size() + i] = x[static_cast<std::size_t>(bh) * seq + idx[i]];
  return out;
}

struct Inputs {
  std::vector<float> q, k, v, dout;
  std::vector<int32_t> seg, pos;
};

Inputs make_inputs(const RingCase& c) {
  Inputs in;
  in.q = random_vector(static_cast<std::size_t>(c.batch) * c.seq * c.heads * c.head_dim, 21);
  in.k = random_vector(static_cast<std::size_t>(c.batch) * c.seq * c.kv_heads * c.head_dim, 22);
  in.v = random_vector(in.k.size(), 23);
  in.dout = random_vector(in.q.size(), 24);
  if (c.packed) packed_documents(c.batch, c.seq, 11, 25, in.seg, in.pos);
  else single_document(c.batch, c.seq, in.seg, in.pos);
  return in;
}

// Optional hook between creating the ring and running it (tests that hold a stream).
using BeforeRun = std::function<void(device::Backend&, device::Stream&)>;

RingResult run_ring(const RingCase& c, const Inputs& in, const BeforeRun& before_forward = {},
                    const BeforeRun& before_backward = {}) {
  const int n = mpi::world_size(), rank = mpi::world_rank();
  const auto idx = local_token_indices(c.layout, c.seq, n, rank);
  const int n_local = static_cast<int>(idx.size());
  auto backend = create_test_backend(c.setting.backend);
  device::Backend& dev = *backend;
  const int qw = c.heads * c.head_dim, kw = c.kv_heads * c.head_dim;
  auto upload = [&](auto host) {
    using T = typename decltype(host)::value_type;
    device::DeviceArray<T> d(dev, host.size());
    d.upload(host.data());
    return d;
  };
  auto q = upload(take_local(in.q, c.batch, c.seq, qw, idx));
  auto k = upload(take_local(in.k, c.batch, c.seq, kw, idx));
  auto v = upload(take_local(in.v, c.batch, c.seq, kw, idx));
  auto dout = upload(take_local(in.dout, c.batch, c.seq, qw, idx));
  auto pos = upload(take_local(in.pos, c.batch, c.seq, 1, idx));
  auto seg = upload(take_local(in.seg, c.batch, c.seq, 1, idx));

  RingShard shard{c.batch, n_local, c.heads, c.kv_heads, c.head_dim, q.data(), k.data(), v.data(), pos.data(), seg.data()};
  mpi::RingExchange ring(120.0);
  RingOptions options;
  options.causal = c.causal;
  options.tiling = {c.block_q, c.block_k};
  options.transfer_path = c.setting.path;
  options.wait_each_step = c.setting.wait_each_step;
  options.test_skip_event = c.setting.skip_event;
  std::unique_ptr<device::Stream> compute = dev.create_stream();  // not the default stream
  device::DeviceArray<float> out(dev, q.size()), lse(dev, static_cast<std::size_t>(c.batch) * c.heads * n_local),
      dq(dev, q.size()), dk(dev, k.size()), dv(dev, v.size());
  RingResult r;
  {
    RingAttention attention(device::ExecContext{&dev, compute.get()}, ring, options);
    if (before_forward) before_forward(dev, *compute);
    attention.forward(shard, out.data(), lse.data());
    if (before_backward) before_backward(dev, *compute);
    attention.backward(shard, out.data(), dout.data(), lse.data(), dq.data(), dk.data(), dv.data());
    r.path = attention.transfer_path();
  }
  auto download = [](const device::DeviceArray<float>& d) {  // waits for every stream
    std::vector<float> h(d.size());
    d.download(h.data());
    return h;
  };
  r.out = download(out);
  r.lse = download(lse);
  r.dq = download(dq);
  r.dk = download(dk);
  r.dv = download(dv);
  compute.reset();
  return r;
}

void check_case(const RingCase& c) {
  const int n = mpi::world_size(), rank = mpi::world_rank();
  INFO("ranks " << n << ", rank " << rank << ", layout " << layout_name(c.layout) << ", "
                << (c.causal ? "causal" : "full") << (c.packed ? ", packed" : "") << ", heads " << c.heads << "/"
                << c.kv_heads << ", seq " << c.seq << ", blocks " << c.block_q << "x" << c.block_k << ", backend "
                << c.setting.backend << ", path " << static_cast<int>(c.setting.path));
  const Inputs in = make_inputs(c);
  device::AttnShape s{c.batch, c.seq, c.seq, c.heads, c.kv_heads, c.head_dim};
  device::AttnMaskArgs mask{in.pos.data(), in.seg.data(), in.pos.data(), in.seg.data(), c.causal};
  FullAttention<double, double> gold(s, mask, in.q, in.k, in.v, &in.dout);
  FullAttention<float, float> naive(s, mask, in.q, in.k, in.v, &in.dout);
  const RingResult r = run_ring(c, in);
  // The path each setting must take: cpu direct unless staging is asked for; sim-gpu staged.
  const bool staged = c.setting.backend == "sim-gpu" || c.setting.path == mpi::PathChoice::staged;
  CHECK(r.path == (staged ? mpi::TransferPath::staged : mpi::TransferPath::direct));

  const auto idx = local_token_indices(c.layout, c.seq, n, rank);
  const int qw = c.heads * c.head_dim, kw = c.kv_heads * c.head_dim;
  // Tolerances from the whole tensors; each rank checks its own tokens.
  CHECK(max_abs_error(r.out, take_local(gold.out, c.batch, c.seq, qw, idx)) <= tolerance(naive.out, gold.out));
  CHECK(max_abs_error(r.lse, take_local_lse(gold.lse, c.batch, c.heads, c.seq, idx)) <= tolerance(naive.lse, gold.lse));
  CHECK(max_abs_error(r.dq, take_local(gold.dq, c.batch, c.seq, qw, idx)) <= tolerance(naive.dq, gold.dq));
  CHECK(max_abs_error(r.dk, take_local(gold.dk, c.batch, c.seq, kw, idx)) <= tolerance(naive.dk, gold.dk));
  CHECK(max_abs_error(r.dv, take_local(gold.dv, c.batch, c.seq, kw, idx)) <= tolerance(naive.dv, gold.dv));
}

}  // namespace

TEST_CASE("ring attention equals the fp64 reference for every layout, mask and head grouping", "[ring]") {
  for (const Setting& setting : kSettings)
    for (Layout layout : {Layout::contiguous, Layout::striped, Layout::zigzag})
      for (bool causal : {false, true})
        for (bool packed : {false, true})
          for (int kv_heads : {4, 2}) {
            RingCase c{layout, causal, packed, 2, 48, 4, kv_heads, 16, 8, 8};
            c.setting = setting;
            check_case(c);
          }
}

TEST_CASE("ring attention with blocks that do not divide the shard, and larger heads", "[ring]") {
  for (const Setting& setting : kSettings) {
    RingCase cases[] = {{Layout::zigzag, true, true, 1, 96, 4, 1, 32, 5, 7},
                        {Layout::striped, true, false, 1, 96, 2, 2, 64, 64, 16},
                        {Layout::contiguous, false, true, 2, 96, 2, 1, 32, 128, 128}};
    for (RingCase& c : cases) {
      c.setting = setting;
      check_case(c);
    }
  }
}

TEST_CASE("the reference backend runs the same ring", "[ring]") {
  RingCase c{Layout::zigzag, true, true, 1, 48, 4, 2, 16, 8, 8};
  c.setting = {"cpu-reference", mpi::PathChoice::automatic};
  check_case(c);
}

TEST_CASE("sim-gpu ring with the host waiting for each step's kernel (benchmark timing)", "[ring]") {
  RingCase c{Layout::zigzag, true, true, 2, 48, 4, 2, 16, 8, 8};
  c.setting = {"sim-gpu", mpi::PathChoice::automatic, true};
  check_case(c);
}

TEST_CASE("ring results are bit-for-bit repeatable, and equal on cpu and sim-gpu", "[ring]") {
  RingCase c{Layout::zigzag, true, true, 2, 96, 4, 2, 32, 16, 16};
  const Inputs in = make_inputs(c);
  const RingResult a = run_ring(c, in), b = run_ring(c, in);
  auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  CHECK(same(a.out, b.out));
  CHECK(same(a.lse, b.lse));
  CHECK(same(a.dq, b.dq));
  CHECK(same(a.dk, b.dk));
  CHECK(same(a.dv, b.dv));
  // The same kernels in the same order on the same data: sim-gpu's results are cpu's, bit for
  // bit, whichever path the bytes took.
  for (const Setting& setting : kSettings) {
    INFO("backend " << setting.backend << ", path " << static_cast<int>(setting.path));
    c.setting = setting;
    const RingResult s = run_ring(c, in);
    CHECK(same(a.out, s.out));
    CHECK(same(a.lse, s.lse));
    CHECK(same(a.dq, s.dq));
    CHECK(same(a.dk, s.dk));
    CHECK(same(a.dv, s.dv));
  }
}

namespace {

// Whether every element of this rank's results is within the reference tolerance.
bool right_answer(const RingCase& c, const Inputs& in, const RingResult& r) {
  const int n = mpi::world_size(), rank = mpi::world_rank();
  device::AttnShape s{c.batch, c.seq, c.seq, c.heads, c.kv_heads, c.head_dim};
  device::AttnMaskArgs mask{in.pos.data(), in.seg.data(), in.pos.data(), in.seg.data(), c.causal};
  FullAttention<double, double> gold(s, mask, in.q, in.k, in.v, &in.dout);
  FullAttention<float, float> naive(s, mask, in.q, in.k, in.v, &in.dout);
  const auto idx = local_token_indices(c.layout, c.seq, n, rank);
  const int qw = c.heads * c.head_dim, kw = c.kv_heads * c.head_dim;
  auto ok = [](const std::vector<float>& got, const auto& want, double tol) {
    for (float x : got)
      if (!std::isfinite(x)) return false;
    return max_abs_error(got, want) <= tol;
  };
  return ok(r.out, take_local(gold.out, c.batch, c.seq, qw, idx), tolerance(naive.out, gold.out)) &&
         ok(r.dq, take_local(gold.dq, c.batch, c.seq, qw, idx), tolerance(naive.dq, gold.dq)) &&
         ok(r.dk, take_local(gold.dk, c.batch, c.seq, kw, idx), tolerance(naive.dk, gold.dk)) &&
         ok(r.dv, take_local(gold.dv, c.batch, c.seq, kw, idx), tolerance(naive.dv, gold.dv));
}

}  // namespace

// The ordering points of the ring, removed one at a time through the test hook. The compute
// stream is held (sim-gpu's gate) while the host enqueues the pass, and opened 300 ms later
// from another thread: with its events the ring's transfers wait for the held kernels and
// copies and the answer is right; without the one removed, the staging copy reads its buffer
// before the held work wrote it (never-written memory holds sim-gpu's NaN poison) and the
// answer is wrong on every rank, deterministically (no race decides it). About 1 s.
TEST_CASE("sim-gpu catches a ring transfer posted without its ordering point", "[ring][sim]") {
  const int n = mpi::world_size();
  RingCase c{Layout::zigzag, true, false, 1, 24 * n, 2, 1, 16, 8, 8};
  const Inputs in = make_inputs(c);
  struct Hold {
    std::string point;
    bool in_forward;  // hold before the forward (K/V send) or before the backward (dK/dV send)
  };
  // With one rank the forward sends nothing; the dK/dV accumulator still travels (to itself).
  std::vector<Hold> holds = {{"ring_dkv_send", false}};
  if (n > 1) holds.push_back({"ring_kv_send", true});
  for (const Hold& h : holds) {
    for (const char* skip : {"none", h.point.c_str()}) {
      INFO("ordering point removed: " << skip << ", " << n << " ranks");
      c.setting = {"sim-gpu", mpi::PathChoice::automatic, false, skip};
      std::unique_ptr<device::SimGpuBackend::Gate> gate;
      std::thread opener;
      auto hold = [&](device::Backend& dev, device::Stream& compute) {
        gate = dynamic_cast<device::SimGpuBackend&>(dev).hold(compute);
        opener = std::thread([&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          gate->open();
        });
      };
      const RingResult r = h.in_forward ? run_ring(c, in, hold, {}) : run_ring(c, in, {}, hold);
      if (opener.joinable()) opener.join();
      const bool right = right_answer(c, in, r);
      if (std::string(skip) == "none") CHECK(right);
      else CHECK(!right);
    }
  }
}

TEST_CASE("the transfer path follows the backend, the override and the request", "[ring][path]") {
  auto cpu = device::create_backend("cpu");
  auto sim = create_test_backend("sim-gpu");
  CHECK(mpi::choose_transfer_path(cpu->capabilities()) == mpi::TransferPath::direct);
  CHECK(mpi::choose_transfer_path(sim->capabilities()) == mpi::TransferPath::staged);
  CHECK(mpi::choose_transfer_path(cpu->capabilities(), mpi::PathChoice::staged) == mpi::TransferPath::staged);
  setenv("RINGWORLD_GPU_AWARE_MPI", "0", 1);
  CHECK(mpi::choose_transfer_path(cpu->capabilities()) == mpi::TransferPath::staged);
  CHECK(mpi::choose_transfer_path(cpu->capabilities(), mpi::PathChoice::direct) == mpi::TransferPath::direct);
  setenv("RINGWORLD_GPU_AWARE_MPI", "1", 1);
  CHECK(mpi::choose_transfer_path(cpu->capabilities()) == mpi::TransferPath::direct);
  setenv("RINGWORLD_GPU_AWARE_MPI", "auto", 1);
  CHECK(mpi::choose_transfer_path(sim->capabilities()) == mpi::TransferPath::staged);
  unsetenv("RINGWORLD_GPU_AWARE_MPI");
  // Debian's Open MPI is built without CUDA or ROCm support.
  CHECK_FALSE(mpi::mpi_is_gpu_aware());
}

TEST_CASE("the ring keeps its workspace: sim-gpu allocates nothing after the first pass", "[ring][sim]") {
  RingCase c{Layout::zigzag, true, true, 1, 24 * mpi::world_size(), 2, 1, 16, 8, 8};
  const Inputs in = make_inputs(c);
  const int n = mpi::world_size(), rank = mpi::world_rank();
  const auto idx = local_token_indices(c.layout, c.seq, n, rank);
  const int n_local = static_cast<int>(idx.size());
  auto backend = create_test_backend("sim-gpu");
  auto& sim = dynamic_cast<device::SimGpuBackend&>(*backend);
  const int qw = c.heads * c.head_dim, kw = c.kv_heads * c.head_dim;
  auto upload = [&](auto host) {
    using T = typename decltype(host)::value_type;
    device::DeviceArray<T> d(sim, host.size());
    d.upload(host.data());
    return d;
  };
  auto q = upload(take_local(in.q, c.batch, c.seq, qw, idx));
  auto k = upload(take_local(in.k, c.batch, c.seq, kw, idx));
  auto v = upload(take_local(in.v, c.batch, c.seq, kw, idx));
  auto dout = upload(take_local(in.dout, c.batch, c.seq, qw, idx));
  auto pos = upload(take_local(in.pos, c.batch, c.seq, 1, idx));
  auto seg = upload(take_local(in.seg, c.batch, c.seq, 1, idx));
  device::DeviceArray<float> out(sim, q.size()), lse(sim, static_cast<std::size_t>(c.batch) * c.heads * n_local),
      dq(sim, q.size()), dk(sim, k.size()), dv(sim, v.size());
  RingShard shard{c.batch, n_local, c.heads, c.kv_heads, c.head_dim, q.data(), k.data(), v.data(), pos.data(), seg.data()};
  mpi::RingExchange ring(120.0);
  RingOptions options;
  options.causal = true;
  options.tiling = {8, 8};
  RingAttention attention(sim, ring, options);
  std::size_t live_after_first = 0, workspace_after_first = 0;
  int pinned_after_first = 0;
  for (int pass = 0; pass < 3; ++pass) {  // three "layers"
    attention.forward(shard, out.data(), lse.data());
    attention.backward(shard, out.data(), dout.data(), lse.data(), dq.data(), dk.data(), dv.data());
    if (pass == 0) {
      live_after_first = sim.stats().live_device_bytes;
      workspace_after_first = attention.workspace_bytes();
      pinned_after_first = attention.device_ring().transfers().pinned_buffers();
    }
  }
  CHECK(sim.stats().live_device_bytes == live_after_first);
  CHECK(attention.workspace_bytes() == workspace_after_first);
  CHECK(attention.device_ring().transfers().pinned_buffers() == pinned_after_first);
  CHECK(sim.stats().release_waits == 0);
}
