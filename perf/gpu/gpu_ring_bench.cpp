// gpu_ring_bench.cpp: ring attention with 2 (or more) ranks on one device, without MPI
// (perf/gpu/check.sh step 5; builds in the GPU machine's standalone build, perf/gpu/standalone/,
// and here against the cpu and sim-gpu backends, tests: gpu_ring_bench_smoke).
//
// Each rank is a thread with its own backend instance (its own compute stream, and the copy
// streams of its DeviceRing channels) on the same device. The ring is the project's own
// RingAttention (src/attention/ring_attention.h), unchanged: K/V double buffers posted before
// the step's kernel, sends gated by events behind their producers, receives by events behind the
// last reader, and on the staged path D2H on the sender's copy stream, a host copy, H2D on the
// receiver's copy stream (mpi/device_transfers.h). Only the transport differs: an in-process
// one (perf/gpu/in_process_ring.h says how it differs from MPI), with two paths:
//   staged   pinned-host staging (what the ring does with an MPI that is not GPU-aware)
//   direct   device to device (a GPU-aware MPI's role: the transport copies device memory)
// The sequence (--tokens, the whole ring's) is split over the ranks in --layout (zigzag by
// default: causal work balanced), causal attention over all of it.
//
// Per token count and path, each repetition times from a barrier of all ranks to each rank's
// stream synchronize (the pass's time = the slowest rank's):
//   ring     RingAttention::forward, then ::backward (the transfers overlapped with compute)
//   compute  the same kernels on the same data with no transfers: every rank holds every
//            shard's K/V (staged once, untimed) and runs the ring's steps in the ring's order
//            (forward: attn_fwd_step per shard; backward: row_dot, then per shard
//            attn_bwd_step into a zeroed dK/dV and the add of an accumulator), all ranks at once,
//            so the device is shared as in the ring
// exposed communication = (ring - compute) / ring, medians over the repetitions, forward and
// forward+backward (target < 5% at 2 ranks; negative values are noise and printed as measured).
//   comm     the pass's transfers alone, every rank at once with nothing computing, through the
//            ring's own channel and path: (ranks - 1) K/V hops forward; backward as many again
//            and a dK/dV hop (fp32) per rank
//   hidden   1 - (ring - compute) / comm, in [0, 1]: the share of the transfer time hidden
//            behind compute (1: all of it; 0: none)
// The ring's own work that is not a kernel of the compute run counts as exposed too: the copy of
// the local K/V into the travelling buffer, the final dK/dV copy home, the headers' checks.
//
// Checks (exit 1 if one fails): the ring's forward output and lse, and its backward's dQ, are
// bit for bit the compute-only run's (the same kernels on the same bytes: a transfer that
// delivered wrong or stale bytes changes them); dK and dV (summed over the ranks' contributions
// in the ring's order, so not comparable bit for bit here) are finite.
//
// Output: '#' comment lines, a header row, a units row, one row per token count, path and pass
// (perf/README.md's format); --json FILE the same rows as JSON (written after each token count).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "device/attention_builder.h"
#include "device/backend.h"
#include "device/exec_context.h"
#include "mpi/device_ring.h"
#include "mpi/transfer_path.h"
#include "perf/gpu/in_process_ring.h"
#include "src/attention/ring_attention.h"
#include "src/common/fatal.h"
#include "perf/gpu/bench_cli.h"
#include "src/common/input_error.h"
#include "src/common/ring_layout.h"

using namespace rw;

namespace {

struct Options {
  std::string backend = "cuda";
  std::string dtype = "bf16";
  std::string attn = "fused";
  std::string layout = "zigzag";
  std::string json;
  std::vector<std::string> paths = {"staged", "direct"};
  std::vector<int> tokens = {16384, 32768};
  int ranks = 2, heads = 16, kv_heads = 16, head_dim = 128, reps = 3;
  bool quick = false;
};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw InputError("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--backend") o.backend = value();
    else if (a == "--dtype") o.dtype = value();
    else if (a == "--attn") o.attn = value();
    else if (a == "--layout") o.layout = value();
    else if (a == "--json") o.json = value();
    else if (a == "--path") o.paths = split(value());
    else if (a == "--tokens") o.tokens = perf::parse_int_list(value());
    else if (a == "--ranks") o.ranks = perf::parse_int_list(value()).at(0);
    else if (a == "--heads") o.heads = perf::parse_int_list(value()).at(0);
    else if (a == "--kv-heads") o.kv_heads = perf::parse_int_list(value()).at(0);
    else if (a == "--head-dim") o.head_dim = perf::parse_int_list(value()).at(0);
    else if (a == "--reps") o.reps = perf::parse_int_list(value()).at(0);
    else if (a == "--quick") o.quick = true;
    else if (a == "--help") {
      std::printf(
          "gpu_ring_bench [--backend cuda|hip|cpu|sim-gpu|...] [--ranks N] [--tokens LIST] [--path staged,direct]\n"
          "               [--dtype bf16|f32] [--attn fused|reference] [--layout zigzag|striped|contiguous]\n"
          "               [--heads H] [--kv-heads H] [--head-dim D] [--reps N] [--json FILE] [--quick]\n"
          "defaults: 2 ranks, 16384 and 32768 tokens (the whole ring's), 16 heads of 128, bf16, zigzag, causal.\n");
      std::exit(0);
    } else {
      throw InputError("unknown option " + a + " (--help lists them)");
    }
  }
  if (o.quick) {
    o.tokens = {48, 96};
    o.heads = 2;  // GQA
    o.kv_heads = 1;
    o.head_dim = 64;  // the fused attention's smallest head size (the GPU backends use it)
    o.reps = 1;
  }
  if (o.dtype != "bf16" && o.dtype != "f32") throw InputError("--dtype takes bf16 or f32");
  if (o.attn != "fused" && o.attn != "reference") throw InputError("--attn takes fused or reference");
  if (o.ranks < 2 || o.ranks > 8) throw InputError("--ranks takes 2 to 8");
  if (o.heads % o.kv_heads != 0) throw InputError("--heads must be a multiple of --kv-heads");
  for (const std::string& p : o.paths)
    if (p != "staged" && p != "direct") throw InputError("--path takes staged and/or direct, not '" + p + "'");
  const Layout layout = parse_layout(o.layout);
  for (int t : o.tokens) check_ring_split(layout, t, o.ranks);
  return o;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(m_);
    const long gen = generation_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_, waiting_ = 0;
  long generation_ = 0;
};

// Values in [-1, 1) stored as `dt` (bytes), seeded per (rank, tensor).
std::vector<unsigned char> random_bytes(device::DType dt, std::size_t n, uint64_t seed) {
  std::vector<unsigned char> bytes(n * device::dtype_size(dt));
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (std::size_t i = 0; i < n; ++i) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float x = static_cast<float>((z >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    if (dt == device::DType::bf16) {
      const device::bf16_t b = device::bf16_from_float(x);
      std::memcpy(&bytes[i * 2], &b, 2);
    } else {
      std::memcpy(&bytes[i * 4], &x, 4);
    }
  }
  return bytes;
}

struct Config {
  int tokens = 0;
  std::string path;
};

// Per config and rank: seconds per repetition of each measurement, and the checks.
struct RankTimes {
  std::vector<double> ring_fwd, ring_bwd, comp_fwd, comp_bwd;
  std::vector<double> bare_kv, bare_dkv;  // one hop of K/V, of dK/dV, with no compute
  bool same_out = false, same_lse = false, same_dq = false, finite_dkv = false;
  bool skipped = false;
  std::string note;
};

struct Row {
  int tokens = 0, ranks = 0;
  std::string path, pass;
  double ring_ms = 0, compute_ms = 0, exposed = 0;
  double comm_ms = 0, hidden = 0;  // the pass's transfers alone; share of them hidden behind compute
  double hop_mb = 0;
  bool ok = false;
};

template <class T>
bool same_bytes(device::Backend& be, const T* a, const T* b, std::size_t n) {
  std::vector<T> x(n), y(n);
  be.copy_to_host(x.data(), a, n * sizeof(T));
  be.copy_to_host(y.data(), b, n * sizeof(T));
  return std::memcmp(x.data(), y.data(), n * sizeof(T)) == 0;
}

bool all_finite(device::Backend& be, const float* a, std::size_t n) {
  std::vector<float> x(n);
  be.copy_to_host(x.data(), a, n * sizeof(float));
  for (float v : x)
    if (!std::isfinite(v)) return false;
  return true;
}

// One rank's whole run: every config in order, in step with the other ranks (barrier).
void run_rank(const Options& o, int rank, const std::vector<Config>& configs,
              std::vector<std::unique_ptr<perf::InProcessWire>>& wires, Barrier& barrier,
              std::vector<std::vector<RankTimes>>& times) {
  auto be_owner = device::create_backend(o.backend);
  device::Backend& be = *be_owner;
  const device::ExecContext exec = device::ExecContext::on_default_stream(be);
  device::Stream& s = *exec.compute;
  const device::DType dt = o.dtype == "bf16" ? device::DType::bf16 : device::DType::f32;
  const Layout layout = parse_layout(o.layout);
  const int n = o.ranks, h = o.heads, kvh = o.kv_heads, d = o.head_dim;
  const bool can_direct = be.capabilities().host_accessible_device_memory || be.capabilities().gpu_aware_mpi_possible;

  for (std::size_t ci = 0; ci < configs.size(); ++ci) {
    const Config& cfg = configs[ci];
    RankTimes& mine = times[ci][rank];
    barrier.wait();
    if (cfg.path == "direct" && !can_direct) {  // every rank sees the same capabilities
      mine.skipped = true;
      mine.note = "backend " + be.name() + "'s device memory is neither host-accessible nor allowed to go to a "
                  "transport as device pointers";
      continue;
    }
    const int nl = static_cast<int>(local_token_count(cfg.tokens, n));
    const std::size_t q_elems = std::size_t(nl) * h * d, kv_elems = std::size_t(nl) * kvh * d;
    const std::size_t rows = std::size_t(h) * nl;
    // Every rank's K, V, pos, seg (this rank's own are the ring's inputs; the others feed the
    // compute-only run), this rank's q and dout.
    std::vector<device::DeviceArray<unsigned char>> k_all, v_all;
    std::vector<device::DeviceArray<int32_t>> pos_all, seg_all;
    for (int r = 0; r < n; ++r) {
      const auto kb = random_bytes(dt, kv_elems, 100 + 10 * r), vb = random_bytes(dt, kv_elems, 101 + 10 * r);
      k_all.emplace_back(be, kb.size());
      v_all.emplace_back(be, vb.size());
      k_all.back().upload(kb.data());
      v_all.back().upload(vb.data());
      std::vector<int32_t> pos(static_cast<std::size_t>(nl)), seg(static_cast<std::size_t>(nl), 0);
      const std::vector<int64_t> idx = local_token_indices(layout, cfg.tokens, n, r);
      for (int i = 0; i < nl; ++i) pos[i] = static_cast<int32_t>(idx[i]);
      pos_all.emplace_back(be, pos.size());
      seg_all.emplace_back(be, seg.size());
      pos_all.back().upload(pos.data());
      seg_all.back().upload(seg.data());
    }
    const auto qb = random_bytes(dt, q_elems, 200 + 10 * rank), db = random_bytes(dt, q_elems, 201 + 10 * rank);
    device::DeviceArray<unsigned char> q(be, qb.size()), dout(be, db.size());
    q.upload(qb.data());
    dout.upload(db.data());
    device::DeviceArray<float> out(be, q_elems), lse(be, rows), dq(be, q_elems), dk(be, kv_elems), dv(be, kv_elems);
    device::DeviceArray<float> out2(be, q_elems), lse2(be, rows), dq2(be, q_elems), delta(be, rows),
        dout32(be, q_elems), dkv_step(be, 2 * kv_elems), dkv_acc(be, 2 * kv_elems);
    be.fill(device::FillArgs{dkv_acc.view({int64_t(2 * kv_elems)}), 0.0}, s);

    const device::AttnShape shape{1, nl, nl, h, kvh, d};
    const device::AttnProblem problem = device::make_attn_problem(be, shape, true, dt);
    auto as_f = [](const device::DeviceArray<unsigned char>& a) { return reinterpret_cast<const float*>(a.data()); };
    RingShard shard{1, nl, h, kvh, d, as_f(q), as_f(k_all[rank]), as_f(v_all[rank]),
                    pos_all[rank].data(), seg_all[rank].data(), dt};
    RingOptions ro;
    ro.causal = true;
    ro.tiling = problem.tiling;
    ro.transfer_path = cfg.path == "direct" ? mpi::PathChoice::direct : mpi::PathChoice::staged;
    perf::InProcessTransport transport(
        *wires[ci], rank,
        cfg.path == "direct" ? perf::InProcessTransport::Copy::device : perf::InProcessTransport::Copy::host, be);
    RingAttention ring(exec, transport, ro);

    const device::AttnQueries queries{as_f(q), pos_all[rank].data(), seg_all[rank].data()};
    auto keys_of = [&](int origin) {
      return device::AttnKeys{as_f(k_all[origin]), as_f(v_all[origin]), pos_all[origin].data(),
                              seg_all[origin].data()};
    };
    auto compute_fwd = [&] {
      be.fill(device::FillArgs{out2.view({int64_t(q_elems)}), 0.0}, s);
      be.fill(device::FillArgs{lse2.view({int64_t(rows)}), -INFINITY}, s);
      device::AttnFwdStepArgs args = device::make_attn_fwd_args(problem, queries, keys_of(rank), out2.data(),
                                                                lse2.data());
      for (int t = 0; t < n; ++t) {
        device::set_attn_keys(args, keys_of(((rank - t) % n + n) % n));
        be.attn_fwd_step(args, {}, s);
      }
      be.synchronize(s);
    };
    auto compute_bwd = [&] {
      const float* dout_for_delta = as_f(dout);
      if (dt == device::DType::bf16) {
        be.convert(device::ConvertArgs{device::view(reinterpret_cast<const device::bf16_t*>(dout.data()),
                                                    {int64_t(q_elems)}),
                                       device::view(dout32.data(), {int64_t(q_elems)})},
                   s);
        dout_for_delta = dout32.data();
      }
      be.attn_row_dot(device::AttnRowDotArgs{shape, out2.data(), dout_for_delta, delta.data()}, s);
      be.fill(device::FillArgs{dq2.view({int64_t(q_elems)}), 0.0}, s);
      device::AttnBwdStepArgs args = device::make_attn_bwd_args(problem, queries, keys_of(rank), as_f(dout),
                                                                lse2.data(), delta.data(), dq2.data(), nullptr,
                                                                nullptr);
      for (int t = 0; t < n; ++t) {
        be.fill(device::FillArgs{dkv_step.view({int64_t(2 * kv_elems)}), 0.0}, s);
        device::set_attn_keys(args, keys_of(((rank - t) % n + n) % n));
        args.dk = dkv_step.data();
        args.dv = dkv_step.data() + kv_elems;
        be.attn_bwd_step(args, {}, s);
        if (t > 0)  // the ring adds the accumulator received from the previous rank
          be.add(device::AddArgs{device::view(static_cast<const float*>(dkv_acc.data()), {int64_t(2 * kv_elems)}),
                                 device::view(dkv_step.data(), {int64_t(2 * kv_elems)})},
                 s);
      }
      be.synchronize(s);
    };
    auto ring_fwd = [&] {
      ring.forward(shard, out.data(), lse.data());
      be.synchronize(s);
    };
    auto ring_bwd = [&] {
      ring.backward(shard, out.data(), as_f(dout), lse.data(), dq.data(), dk.data(), dv.data());
      be.synchronize(s);
    };
    auto timed = [&](const std::function<void()>& f, std::vector<double>& into) {
      barrier.wait();
      const double t0 = now_s();
      f();
      into.push_back(now_s() - t0);
    };
    // Warm-up (allocates the ring's workspaces and pinned buffers), then the checks.
    std::vector<double> scratch;
    timed(ring_fwd, scratch);
    timed(ring_bwd, scratch);
    timed(compute_fwd, scratch);
    timed(compute_bwd, scratch);
    mine.same_out = same_bytes(be, out.data(), out2.data(), q_elems);
    mine.same_lse = same_bytes(be, lse.data(), lse2.data(), rows);
    mine.same_dq = same_bytes(be, dq.data(), dq2.data(), q_elems);
    mine.finite_dkv = all_finite(be, dk.data(), kv_elems) && all_finite(be, dv.data(), kv_elems);
    // The transfers alone: one hop of K/V (values and pos/seg as one message) and one of dK/dV
    // (fp32), through the ring's own K/V channel and path, every rank at once, nothing computing.
    const std::size_t kv_hop = 2 * kv_elems * device::dtype_size(dt) + 2 * std::size_t(nl) * sizeof(int32_t),
                      dkv_hop = 2 * kv_elems * sizeof(float);
    device::DeviceArray<unsigned char> bare_out(be, std::max(kv_hop, dkv_hop)), bare_in(be, std::max(kv_hop, dkv_hop));
    auto ready = be.create_event(), writable = be.create_event();
    auto bare = [&](std::size_t n_bytes) {
      return [&, n_bytes] {
        constexpr int kTagBare = 901;  // none of the ring's tags
        be.record(*ready, s);
        be.record(*writable, s);
        mpi::DeviceRing& dr = ring.device_ring();
        mpi::DeviceRing::Request send = dr.post_send_next(bare_out.data(), n_bytes, kTagBare, *ready, "bare send");
        mpi::DeviceRing::Request recv = dr.post_recv_prev(bare_in.data(), n_bytes, kTagBare, *writable, "bare receive");
        dr.wait(send);
        dr.wait(recv, &s);
        be.synchronize(s);
      };
    };
    timed(bare(kv_hop), scratch);  // the staging buffers of these sizes
    timed(bare(dkv_hop), scratch);
    for (int rep = 0; rep < o.reps; ++rep) {  // interleaved: drift hits all alike
      timed(ring_fwd, mine.ring_fwd);
      timed(ring_bwd, mine.ring_bwd);
      timed(compute_fwd, mine.comp_fwd);
      timed(compute_bwd, mine.comp_bwd);
      timed(bare(kv_hop), mine.bare_kv);
      timed(bare(dkv_hop), mine.bare_dkv);
    }
    barrier.wait();  // no rank tears down its ring while a neighbour still uses the wire
  }
}

std::string json_text(const Options& o, const std::vector<Row>& rows, const std::vector<std::string>& notes) {
  std::ostringstream js;
  js.precision(8);
  js << "{\n  \"bench\": \"gpu_ring_bench\",\n  \"backend\": \"" << o.backend << "\",\n  \"ranks\": " << o.ranks
     << ",\n  \"dtype\": \"" << o.dtype << "\",\n  \"attn\": \"" << o.attn << "\",\n  \"layout\": \"" << o.layout
     << "\",\n  \"heads\": " << o.heads << ",\n  \"kv_heads\": " << o.kv_heads << ",\n  \"head_dim\": " << o.head_dim
     << ",\n  \"causal\": true,\n  \"quick\": " << (o.quick ? "true" : "false")
     << ",\n  \"exposed_formula\": \"(ring - compute) / ring, medians over reps, slowest rank\",\n  \"notes\": [";
  for (std::size_t i = 0; i < notes.size(); ++i) js << (i ? ", " : "") << "\"" << notes[i] << "\"";
  js << "],\n  \"rows\": [\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    js << "    {\"tokens\": " << r.tokens << ", \"ranks\": " << r.ranks << ", \"path\": \"" << r.path
       << "\", \"pass\": \"" << r.pass << "\", \"ring_ms\": " << r.ring_ms << ", \"compute_ms\": " << r.compute_ms
       << ", \"exposed\": " << r.exposed << ", \"comm_ms\": " << r.comm_ms << ", \"hidden\": " << r.hidden << ", \"hop_mb\": " << r.hop_mb << ", \"ok\": " << (r.ok ? "true" : "false")
       << "}" << (i + 1 < rows.size() ? "," : "") << "\n";
  }
  js << "  ]\n}\n";
  return js.str();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const device::BackendInfo* info = device::find_backend(o.backend);
    if (!info) throw InputError("unknown backend '" + o.backend + "'");
    if (!info->available()) {
      std::printf("# gpu_ring_bench: backend %s is not available here: %s\n", o.backend.c_str(),
                  info->unavailable_reason ? info->unavailable_reason().c_str() : "(no reason given)");
      return 77;
    }
    setenv("RINGWORLD_GPU_ATTN_FWD", o.attn.c_str(), 1);  // read when each rank creates its backend
    setenv("RINGWORLD_GPU_ATTN_BWD", o.attn.c_str(), 1);
    std::vector<Config> configs;
    for (int t : o.tokens)
      for (const std::string& p : o.paths) configs.push_back({t, p});
    std::vector<std::unique_ptr<perf::InProcessWire>> wires;
    for (std::size_t i = 0; i < configs.size(); ++i) wires.push_back(std::make_unique<perf::InProcessWire>(o.ranks));
    std::vector<std::vector<RankTimes>> times(configs.size(), std::vector<RankTimes>(o.ranks));

    std::printf("# gpu_ring_bench on %s: %d in-process ranks, %s, attention %s, %s layout, causal, heads %d/%d, d %d%s\n",
                o.backend.c_str(), o.ranks, o.dtype.c_str(), o.attn.c_str(), o.layout.c_str(), o.heads, o.kv_heads,
                o.head_dim, o.quick ? " (--quick: smoke-test sizes)" : "");
    std::printf("# exposed = (ring - compute) / ring; times: barrier to the slowest rank's synchronize, median of %d\n",
                o.reps);
    std::printf("# checks: ring out, lse, dQ bit for bit the compute-only run's; dK/dV finite\n");
    std::fflush(stdout);
    Barrier barrier(o.ranks);
    std::vector<std::thread> threads;
    for (int r = 0; r < o.ranks; ++r)
      threads.emplace_back([&, r] {
        try {
          run_rank(o, r, configs, wires, barrier, times);
        } catch (const std::exception& e) {  // ends the process: the other ranks must not wait
          RW_FAIL("gpu_ring_bench rank " + std::to_string(r) + ": " + e.what());
        }
      });
    for (auto& t : threads) t.join();

    std::printf("%7s %5s %-7s %-8s %10s %10s %8s %10s %8s %8s %4s\n", "tokens", "ranks", "path", "pass", "ring",
                "compute", "exposed", "comm", "hidden", "hop", "ok");
    std::printf("%7s %5s %-7s %-8s %10s %10s %8s %10s %8s %8s %4s\n", "count", "count", "-", "-", "ms", "ms", "ratio",
                "ms", "ratio", "MB", "-");
    std::vector<Row> rows;
    std::vector<std::string> notes;
    bool ok = true;
    const std::size_t value_size = o.dtype == "bf16" ? 2 : 4;
    for (std::size_t ci = 0; ci < configs.size(); ++ci) {
      const std::vector<RankTimes>& t = times[ci];
      if (t[0].skipped) {
        notes.push_back(configs[ci].path + " skipped: " + t[0].note);
        std::printf("# %d tokens, %s path skipped: %s\n", configs[ci].tokens, configs[ci].path.c_str(),
                    t[0].note.c_str());
        continue;
      }
      bool checks = true;
      for (const RankTimes& rt : t) checks = checks && rt.same_out && rt.same_lse && rt.same_dq && rt.finite_dkv;
      // Per repetition the slowest rank, then the median over repetitions.
      auto slowest = [&](std::vector<double> RankTimes::*field, int rep) {
        double m = 0;
        for (const RankTimes& rt : t) m = std::max(m, (rt.*field)[rep]);
        return m;
      };
      std::vector<double> rf, rb, cf, cb, rfb, cfb, kv, dkv;
      for (int rep = 0; rep < o.reps; ++rep) {
        rf.push_back(slowest(&RankTimes::ring_fwd, rep));
        rb.push_back(slowest(&RankTimes::ring_bwd, rep));
        cf.push_back(slowest(&RankTimes::comp_fwd, rep));
        cb.push_back(slowest(&RankTimes::comp_bwd, rep));
        kv.push_back(slowest(&RankTimes::bare_kv, rep));
        dkv.push_back(slowest(&RankTimes::bare_dkv, rep));
        rfb.push_back(rf.back() + rb.back());
        cfb.push_back(cf.back() + cb.back());
      }
      const int nl = static_cast<int>(local_token_count(configs[ci].tokens, o.ranks));
      const double hop_mb = (2.0 * nl * o.kv_heads * o.head_dim * value_size + 2.0 * nl * 4) / 1e6;
      for (int pass = 0; pass < 2; ++pass) {
        Row r;
        r.tokens = configs[ci].tokens;
        r.ranks = o.ranks;
        r.path = configs[ci].path;
        r.pass = pass == 0 ? "fwd" : "fwd+bwd";
        r.ring_ms = perf::median(pass == 0 ? rf : rfb) * 1e3;
        r.compute_ms = perf::median(pass == 0 ? cf : cfb) * 1e3;
        r.exposed = r.ring_ms > 0 ? (r.ring_ms - r.compute_ms) / r.ring_ms : 0.0;
        // Forward: ranks - 1 K/V hops; backward: as many again, and a dK/dV hop per rank.
        const double hops_kv = (pass == 0 ? 1.0 : 2.0) * (o.ranks - 1), hops_dkv = pass == 0 ? 0.0 : o.ranks;
        r.comm_ms = (hops_kv * perf::median(kv) + hops_dkv * perf::median(dkv)) * 1e3;
        r.hidden = r.comm_ms > 0 ? std::min(1.0, std::max(0.0, 1.0 - (r.ring_ms - r.compute_ms) / r.comm_ms)) : 0.0;
        r.hop_mb = hop_mb;
        r.ok = checks;
        rows.push_back(r);
        std::printf("%7d %5d %-7s %-8s %10.3f %10.3f %8.4f %10.3f %8.4f %8.2f %4s\n", r.tokens, r.ranks,
                    r.path.c_str(), r.pass.c_str(), r.ring_ms, r.compute_ms, r.exposed, r.comm_ms, r.hidden, r.hop_mb,
                    r.ok ? "yes" : "NO");
      }
      ok = ok && checks;
      perf::write_text_atomically(o.json, json_text(o, rows, notes));
    }
    perf::write_text_atomically(o.json, json_text(o, rows, notes));
    std::printf("# %s\n", ok ? "all checks passed" : "A CHECK FAILED: the ring's results differ from compute-only");
    return ok ? 0 : 1;
  } catch (const InputError& e) {
    std::fprintf(stderr, "gpu_ring_bench: %s\n", e.what());
    return 2;
  }
}
