// bench_ring: how well ring attention scales and overlaps, and what it costs in memory.
// Run under mpirun, one thread per rank:
//   mpirun -np 2 -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 bench_ring [--backward] ...
//
// Tables (all printed by rank 0; times reduced across ranks):
//   ring_memory  (measured first, see below) per sequence length in increasing order: the
//                process peak RSS after a ring forward (forward+backward with --mem-backward)
//                at that length with heads = kv_heads = 1 (to keep the longest runs
//                affordable), its growth over the RSS before any benchmark allocation, and
//                that growth against the growth of the shard.
//                Peak RSS is a high-water mark that never goes down, so this table is run
//                before anything else and its sizes in increasing order.
//   ring_scaling per layout, seq and pass (fwd; fwdbwd with --backward):
//                t1   = one kernel call over the whole sequence on rank 0 alone (same kernels,
//                       same single thread), the other ranks idle;
//                ring = RingAttention over all ranks from a barrier, per rep the min/avg/max
//                       over ranks;
//                each rep times t1 then the ring (interleaved: load drift on a shared machine
//                hits both), medians over reps;
//                efficiency = t1 / (ranks * ring_max)  (1.0: perfect strong scaling).
//   ring_steps   per step (averaged over timed reps): compute (avg, max, imbalance = max - min
//                over ranks) and exposed wait (avg, min, max; RingStepStats: wait = time
//                blocked on transfers after the step's compute ended, which also covers a
//                slower neighbour), bytes sent per rank, and bare_comm_ms = the time the same
//                bytes take round the ring with no compute (measured here). Overlap two ways:
//                  busy_pct   = 100 * compute / (compute + exposed_wait)  (avgs over ranks)
//                  hidden_pct = 100 * (1 - exposed_wait_min / bare_comm), clamped to [0, 100]:
//                               the share of the transfer time hidden behind compute. The
//                               smallest wait is used because the last rank to finish its
//                               compute waits for the transfer only, the others for it too.
//   ring_hops    per layout, seq and pass: the exposed communication per ring hop (the mean over
//                the steps that move data of exposed_wait avg), the bare hop time, and
//                hidden_pct = 100 * (1 - exposed / bare) in [0, 100].
//   fsdp_overlap (unless --no-fsdp) per unit size: FSDP all-gathers of L layer units through
//                train::FsdpParams on the chosen device and path. bare_ms: gather() of a unit with
//                nothing in flight (median over units and reps); layer_ms: the emulated layer
//                compute (GEMMs on the compute stream, --fsdp-layer-ratio x the bare gather, with the
//                transfers progressed between them as the ring's tiles do); exposed_ms: gather()
//                of unit l+1 after prefetch(l+1) was posted before layer l's compute;
//                hidden_pct = 100 * (1 - exposed / bare) in [0, 100]: the all-gather hidden
//                under the previous layer.
// --device cpu | sim-gpu (sim-gpu: kernels on worker threads, device memory the host cannot
// touch, so MPI traffic is staged through pinned buffers), --path auto | direct | staged (how
// device buffers reach MPI: mpi/transfer_path.h). On sim-gpu the host waits for each ring step's
// kernel (RingOptions::wait_each_step) so that compute_ms is the kernel's time.
// Warm-ups are short (a 1024-token prefix for t1, a 2048-token-per-rank ring before each
// layout); timed reps stop at --reps or when one more would exceed --budget-s (at least one).
#include <cblas.h>
#include <omp.h>

#include "device/cpu/blas_kernel_select.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "device/backend.h"
#include "mpi/ring_exchange.h"
#include "mpi/runtime.h"
#include "perf/bench_common.h"
#include "mpi/process_grid.h"
#include "mpi/transfer_path.h"
#include "src/attention/layout.h"
#include "src/attention/ring_attention.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/model/param_init.h"
#include "src/train/fsdp_params.h"

namespace po = boost::program_options;
using namespace rw;
using namespace rw::perf;

namespace {

// Target from the performance issue: zigzag, causal, one thread per rank, 2 ranks.
constexpr double kTargetEfficiency = 0.9;
constexpr int kTargetRanks = 2;
constexpr int kBareCommTag = 900;  // distinct from the ring's own tags (101-104)
constexpr double kMiB = 1024.0 * 1024.0;
constexpr int kWarmupTokensPerRank = 2048;  // ring warm-up: 2048 tokens per rank (zigzag-divisible)

struct Options {
  std::string seq_text = "8192,16384";
  std::string mem_seq_text = "16384,65536";
  std::string layout_text = "zigzag";
  int heads = 8, kv_heads = 8, head_dim = 64;
  int block_q = 256, block_k = 256;
  int threads_per_rank = 1;
  int reps = 3;
  double budget_s = 60;  // per case: timed t1 + ring reps
  double timeout_s = 900;
  bool no_causal = false, backward = false, no_mem = false, mem_backward = false, quick = false, json = false;
  std::string device = "cpu";
  std::string path_text = "auto";
  std::string fsdp_mib_text = "4,16";
  int fsdp_layers = 4;
  double fsdp_layer_ratio = 2.0;
  bool no_fsdp = false;
};

// This rank's shard of one problem and the ring buffers' outputs, on the device.
struct RingProblem {
  device::DeviceArray<float> q, k, v, out, lse, dout, dq, dk, dv;
  device::DeviceArray<int32_t> pos, seg;
  RingShard shard;
  std::size_t shard_bytes = 0;  // q, k, v, pos, seg of this rank

  RingProblem(device::Backend& backend, Layout layout, int seq_len, int heads, int kv_heads,
              int head_dim, bool with_backward, int rank, int n_ranks) {
    const auto tokens = local_token_indices(layout, seq_len, n_ranks, rank);
    const int n_local = static_cast<int>(tokens.size());
    const std::size_t q_count = static_cast<std::size_t>(n_local) * heads * head_dim;
    const std::size_t kv_count = static_cast<std::size_t>(n_local) * kv_heads * head_dim;
    q = device::DeviceArray<float>(backend, q_count);
    k = device::DeviceArray<float>(backend, kv_count);
    v = device::DeviceArray<float>(backend, kv_count);
    out = device::DeviceArray<float>(backend, q_count);
    lse = device::DeviceArray<float>(backend, static_cast<std::size_t>(heads) * n_local);
    const uint64_t seed = 1000 + 10 * static_cast<uint64_t>(rank);
    fill_uniform(backend, q, seed);
    fill_uniform(backend, k, seed + 1);
    fill_uniform(backend, v, seed + 2);
    if (with_backward) {
      dout = device::DeviceArray<float>(backend, q_count);
      dq = device::DeviceArray<float>(backend, q_count);
      dk = device::DeviceArray<float>(backend, kv_count);
      dv = device::DeviceArray<float>(backend, kv_count);
      fill_uniform(backend, dout, seed + 3);
    }
    std::vector<int32_t> pos_host(tokens.begin(), tokens.end()), seg_host(n_local, 0);
    pos = device::DeviceArray<int32_t>(backend, n_local);
    seg = device::DeviceArray<int32_t>(backend, n_local);
    pos.upload(pos_host.data());
    seg.upload(seg_host.data());
    shard = {1, n_local, heads, kv_heads, head_dim, q.data(), k.data(), v.data(), pos.data(), seg.data()};
    shard_bytes = q.n_bytes() + k.n_bytes() + v.n_bytes() + pos.n_bytes() + seg.n_bytes();
  }
};

// One ring run (forward, then backward when asked), timed on this rank from a barrier.
struct RingRun {
  double fwd_s = 0, total_s = 0;
  std::vector<RingStepStats> fwd_steps, bwd_steps;
};

RingRun run_ring(RingAttention& attention, RingProblem& p, bool backward) {
  RingRun run;
  mpi::barrier();
  const double t0 = wall_seconds();
  attention.forward(p.shard, p.out.data(), p.lse.data());
  const double t1 = wall_seconds();
  run.fwd_steps = attention.last_stats();
  if (backward) {
    attention.backward(p.shard, p.out.data(), p.dout.data(), p.lse.data(), p.dq.data(), p.dk.data(),
                       p.dv.data());
    run.bwd_steps = attention.last_stats();
  }
  run.fwd_s = t1 - t0;
  run.total_s = wall_seconds() - t0;
  return run;
}

// min / avg / max of one value over the ranks.
struct Spread {
  double min = 0, avg = 0, max = 0;
};
Spread spread(double value) {
  return {mpi::allreduce_min(value), mpi::allreduce_sum(value) / mpi::world_size(),
          mpi::allreduce_max(value)};
}

// Rank 0's value on every rank (the others pass nothing in): a broadcast through allreduce.
double from_root(double value) {
  return mpi::allreduce_max(mpi::world_rank() == 0 ? value : -std::numeric_limits<double>::infinity());
}

// Seconds for n_bytes to move one hop round the ring with every rank sending at once and no
// compute: median over a few runs (after a warm-up) of the slowest rank.
double bare_transfer_s(mpi::RingExchange& ring, std::size_t n_bytes) {
  std::vector<char> send(n_bytes, 1), recv(n_bytes, 0);
  auto once = [&] {
    mpi::barrier();
    const double t0 = wall_seconds();
    RingTransport::Request r = ring.post_recv_prev(recv.data(), n_bytes, kBareCommTag);
    RingTransport::Request s = ring.post_send_next(send.data(), n_bytes, kBareCommTag);
    ring.wait(r, "bare transfer receive");
    ring.wait(s, "bare transfer send");
    return mpi::allreduce_max(wall_seconds() - t0);
  };
  once();
  std::vector<double> seconds;
  for (int i = 0; i < 5; ++i) seconds.push_back(once());
  return median(seconds);
}

// Whether every rank runs on this host (hash of the host name agrees on all ranks).
bool single_host() {
  const double hash = static_cast<double>(std::hash<std::string>{}(mpi::host_name()) % (1ull << 52));
  return mpi::allreduce_min(hash) == mpi::allreduce_max(hash);
}

// Adds one ring_steps row group (one pass of one case) from per-rank step sums over reps.
// Exposed communication per hop of one pass, over the steps that move data.
struct HopSummary {
  int hops = 0;
  double exposed_s = 0, bare_s = 0;
};

void add_step_rows(Table& table, const std::string& layout, int seq_len, const char* pass,
                   const std::vector<std::vector<RingStepStats>>& per_rep, mpi::RingExchange& ring,
                   std::map<std::size_t, double>& bare_cache, HopSummary* hops) {
  if (per_rep.empty()) return;
  const int n_steps = static_cast<int>(per_rep.front().size());
  for (int t = 0; t < n_steps; ++t) {
    double compute_s = 0, wait_s = 0;
    for (const auto& steps : per_rep) {
      compute_s += steps[t].compute_s;
      wait_s += steps[t].wait_s;
    }
    compute_s /= per_rep.size();
    wait_s /= per_rep.size();
    const Spread compute = spread(compute_s), wait = spread(wait_s);
    const double bytes = spread(static_cast<double>(per_rep.front()[t].bytes_sent)).max;
    double bare_s = std::numeric_limits<double>::quiet_NaN();
    if (bytes > 0) {
      const auto key = static_cast<std::size_t>(bytes);
      if (!bare_cache.count(key)) bare_cache[key] = bare_transfer_s(ring, key);
      bare_s = bare_cache[key];
    }
    if (bytes > 0 && n_steps > 1) {
      ++hops->hops;
      hops->exposed_s += wait.avg;
      hops->bare_s += bare_s;
    }
    const double busy_pct = 100.0 * compute.avg / (compute.avg + wait.avg);
    const double hidden_pct = bytes > 0 ? 100.0 * std::clamp(1.0 - wait.min / bare_s, 0.0, 1.0)
                                        : std::numeric_limits<double>::quiet_NaN();
    table.add_row({Cell::text(layout), Cell::integer(seq_len), Cell::text(pass), Cell::integer(t),
                   Cell::number(compute.avg * 1e3, 2), Cell::number(compute.max * 1e3, 2),
                   Cell::number((compute.max - compute.min) * 1e3, 2), Cell::number(wait.avg * 1e3, 3),
                   Cell::number(wait.min * 1e3, 3), Cell::number(wait.max * 1e3, 3),
                   Cell::number(bytes / kMiB, 2), Cell::number(bare_s * 1e3, 3), Cell::number(busy_pct, 1),
                   Cell::number(hidden_pct, 1)});
  }
}

// A LLaMA whose layer unit is about `mib` MiB: 4 h^2 + 3 h i + 2 h floats with i = 2h, about
// 10 h^2; a small vocabulary so the layers dominate. hidden a multiple of 16 (8 heads, even
// head_dim).
model::LlamaConfig fsdp_config(int mib, int layers) {
  const double floats = mib * 1024.0 * 1024.0 / 4;
  model::LlamaConfig c;
  c.hidden_size = 16 * std::max<int64_t>(1, std::llround(std::sqrt(floats / 10.0) / 16));
  c.intermediate_size = 2 * c.hidden_size;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.vocab_size = 256;
  return c;
}

// The FSDP overlap table (see the top of the file).
Table fsdp_overlap_table(device::Backend& backend, mpi::PathChoice path, const std::vector<int>& mibs, int layers,
                         double layer_ratio, int reps) {
  Table table("fsdp_overlap", {{"device", "-"}, {"path", "-"}, {"ranks", "-"}, {"unit_mib", "MiB"}, {"layers", "-"},
                               {"bare_ms", "ms"}, {"layer_ms", "ms"}, {"exposed_ms", "ms"}, {"hidden_pct", "%"},
                               {"wrong", "-"}});
  table.comment("FSDP all-gathers of layer units (train::FsdpParams over all ranks); bare_ms: gather() of a unit with "
                "nothing in flight, to its landing on the compute stream (median over units and reps, max over ranks)");
  table.comment(format("layer_ms: the emulated layer (GEMMs on the compute stream, %.2g x the bare gather); exposed_ms: ",
                       layer_ratio) +
                "gather() of unit l+1 prefetched before layer l's compute; hidden_pct = 100*(1 - exposed/bare)");
  table.comment("wrong: elements of the last gathered unit that differ from their initial values (0)");
  const int n_ranks = mpi::world_size();
  mpi::ProcessGrid grid(1, n_ranks, 900.0);
  std::unique_ptr<device::Stream> compute = backend.create_stream();
  std::unique_ptr<device::Event> done = backend.create_event();
  constexpr int kGemm = 256;
  device::DeviceArray<float> ga(backend, kGemm * kGemm), gb(backend, kGemm * kGemm), gc(backend, kGemm * kGemm);
  fill_uniform(backend, ga, 1);
  fill_uniform(backend, gb, 2);
  device::GemmArgs gemm;
  gemm.a = device::view(static_cast<const float*>(ga.data()), {kGemm, kGemm});
  gemm.b = device::view(static_cast<const float*>(gb.data()), {kGemm, kGemm});
  gemm.c = device::view(gc.data(), {kGemm, kGemm});
  for (int mib : mibs) {
    const model::LlamaConfig config = fsdp_config(mib, layers);
    train::FsdpOptions options;
    options.transfer_path = path;
    train::FsdpParams params(config, grid, device::ExecContext{&backend, compute.get()}, options);
    params.initialize(1);
    auto landed_s = [&](int unit, double* seconds) {  // gather to landing on the compute stream
      const double t0 = wall_seconds();
      params.gather(unit);
      backend.record(*done, *compute);
      backend.host_wait(*done, params.progress_hook());
      *seconds = wall_seconds() - t0;
    };
    auto one_gemm_s = [&] {
      const double t0 = wall_seconds();
      backend.gemm(gemm, *compute);
      backend.record(*done, *compute);
      backend.host_wait(*done, params.progress_hook());
      return wall_seconds() - t0;
    };
    // Bare gathers (every rank at once, nothing else in flight).
    std::vector<double> bare;
    for (int rep = 0; rep <= reps; ++rep)
      for (int u = 1; u <= layers; ++u) {
        params.shards();  // forget what was gathered: the next gather moves the unit
        grid.barrier();
        double s = 0;
        landed_s(u, &s);
        params.release(u);
        if (rep > 0) bare.push_back(s);  // rep 0 warms up
      }
    const double bare_s = mpi::allreduce_max(median(bare));
    one_gemm_s();
    std::vector<double> g;
    for (int i = 0; i < 5; ++i) g.push_back(one_gemm_s());
    const int n_gemms =
        static_cast<int>(std::max(1.0, std::round(layer_ratio * bare_s / mpi::allreduce_max(median(g)))));
    // Overlapped: unit l+1's all-gather in flight while layer l computes.
    std::vector<double> layer, exposed;
    for (int rep = 0; rep < reps; ++rep) {
      params.shards();
      grid.barrier();
      double s = 0;
      landed_s(1, &s);
      for (int u = 1; u < layers; ++u) {
        params.prefetch(u + 1);
        const double t0 = wall_seconds();
        for (int i = 0; i < n_gemms; ++i) {
          backend.gemm(gemm, *compute);
          params.progress();  // between kernels, as the ring's tiles do
        }
        backend.record(*done, *compute);
        backend.host_wait(*done, params.progress_hook());
        layer.push_back(wall_seconds() - t0);
        params.release(u);
        landed_s(u + 1, &s);
        exposed.push_back(s);
      }
      params.release(layers);
    }
    // Correctness: the last unit as gathered.
    const float* full = params.gather(layers);
    const auto& spec = params.units()[layers];
    std::vector<float> got(static_cast<std::size_t>(spec.count));
    backend.copy_to_host(got.data(), full, got.size() * sizeof(float));
    params.release(layers);
    double wrong = 0;
    for (int64_t i = 0; i < spec.count; ++i) wrong += got[i] != model::initial_value(1, layers, spec, i);
    wrong = mpi::allreduce_sum(wrong);
    const double layer_s = mpi::allreduce_max(median(layer)), exposed_s = mpi::allreduce_max(median(exposed));
    std::string why;
    const mpi::TransferPath chosen = mpi::choose_transfer_path(backend.capabilities(), path, &why);
    table.add_row({Cell::text(backend.name()), Cell::text(mpi::transfer_path_name(chosen)), Cell::integer(n_ranks),
                   Cell::number(spec.count * 4.0 / kMiB, 2), Cell::integer(layers), Cell::number(bare_s * 1e3, 3),
                   Cell::number(layer_s * 1e3, 3), Cell::number(exposed_s * 1e3, 3),
                   Cell::number(100.0 * std::clamp(1.0 - exposed_s / bare_s, 0.0, 1.0), 1),
                   Cell::integer(static_cast<int64_t>(wrong))});
  }
  return table;
}

}  // namespace

int main(int argc, char** argv) {
  rw::device::cpu::select_blas_kernel(argc, argv);  // before MPI: may re-exec with OPENBLAS_CORETYPE
  mpi::Runtime mpi_runtime(argc, argv);
  const int rank = mpi::world_rank(), n_ranks = mpi::world_size();
  const bool is_root = rank == 0;

  Options o;
  std::vector<int> seq_lens, mem_seq_lens, fsdp_mibs;
  std::vector<Layout> layouts;
  mpi::PathChoice path_choice = mpi::PathChoice::automatic;
  std::string error;
  po::options_description desc("bench_ring options (run under mpirun -np N)");
  desc.add_options()
      ("help,h", "show this help")
      ("seq", po::value(&o.seq_text)->default_value(o.seq_text), "sequence lengths, comma separated")
      ("heads", po::value(&o.heads)->default_value(o.heads), "query heads")
      ("kv-heads", po::value(&o.kv_heads)->default_value(o.kv_heads), "key/value heads")
      ("head-dim", po::value(&o.head_dim)->default_value(o.head_dim), "head dimension")
      ("layout", po::value(&o.layout_text)->default_value(o.layout_text), "contiguous | striped | zigzag | all")
      ("no-causal", po::bool_switch(&o.no_causal), "full attention (default: causal)")
      ("backward", po::bool_switch(&o.backward), "also time forward+backward")
      ("block-q", po::value(&o.block_q)->default_value(o.block_q), "query rows per tile")
      ("block-k", po::value(&o.block_k)->default_value(o.block_k), "key rows per tile")
      ("threads", po::value(&o.threads_per_rank)->default_value(o.threads_per_rank), "OpenMP threads per rank")
      ("reps", po::value(&o.reps)->default_value(o.reps), "timed runs per case (after one warm-up)")
      ("budget-s", po::value(&o.budget_s)->default_value(o.budget_s),
       "seconds of timed runs per case: no further rep once one more would exceed it")
      ("mem-seq", po::value(&o.mem_seq_text)->default_value(o.mem_seq_text),
       "sequence lengths of the memory table (heads 1), comma separated")
      ("no-mem", po::bool_switch(&o.no_mem), "skip the memory table")
      ("mem-backward", po::bool_switch(&o.mem_backward), "memory table: forward+backward (default: forward)")
      ("timeout", po::value(&o.timeout_s)->default_value(o.timeout_s), "ring transfer stall timeout, s")
      ("device", po::value(&o.device)->default_value(o.device), "backend: cpu | sim-gpu")
      ("path", po::value(&o.path_text)->default_value(o.path_text),
       "how device buffers reach MPI: auto | direct | staged")
      ("fsdp-mib", po::value(&o.fsdp_mib_text)->default_value(o.fsdp_mib_text),
       "FSDP overlap table: layer unit sizes in MiB (whole unit), comma separated")
      ("fsdp-layers", po::value(&o.fsdp_layers)->default_value(o.fsdp_layers), "FSDP overlap table: layers")
      ("fsdp-layer-ratio", po::value(&o.fsdp_layer_ratio)->default_value(o.fsdp_layer_ratio),
       "FSDP overlap table: emulated layer compute / bare all-gather time")
      ("no-fsdp", po::bool_switch(&o.no_fsdp), "skip the FSDP overlap table")
      ("quick", po::bool_switch(&o.quick), "small sizes, one rep (smoke test)")
      ("json", po::bool_switch(&o.json), "JSON Lines instead of tables");
  bool show_help = false;
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
    show_help = vm.count("help") > 0;
    if (o.quick) {
      o.seq_text = "2048";
      o.mem_seq_text = "2048,8192";
      o.fsdp_mib_text = "1";
      o.reps = 1;
    }
    path_choice = mpi::parse_path_choice(o.path_text);
    fsdp_mibs = parse_int_list(o.fsdp_mib_text, "fsdp-mib");
    if (o.fsdp_layers < 2) throw InputError("--fsdp-layers must be at least 2");
    if (!(o.fsdp_layer_ratio > 0)) throw InputError("--fsdp-layer-ratio must be positive");
    if (!device::find_backend(o.device)) throw InputError("--device '" + o.device + "': unknown backend");
    seq_lens = parse_int_list(o.seq_text, "seq");
    mem_seq_lens = parse_int_list(o.mem_seq_text, "mem-seq");
    std::sort(mem_seq_lens.begin(), mem_seq_lens.end());  // the high-water mark only grows
    if (o.layout_text == "all") layouts = {Layout::contiguous, Layout::striped, Layout::zigzag};
    else layouts = {parse_layout(o.layout_text)};
    if (o.heads <= 0 || o.kv_heads <= 0 || o.head_dim <= 0 || o.heads % o.kv_heads != 0)
      throw InputError("--heads and --kv-heads must be positive, heads a multiple of kv-heads");
    if (o.block_q <= 0 || o.block_k <= 0 || o.reps <= 0 || o.threads_per_rank <= 0)
      throw InputError("--block-q, --block-k, --reps and --threads must be positive");
    for (Layout layout : layouts)
      for (int s : seq_lens) check_ring_split(layout, s, n_ranks);
    if (!o.no_mem)
      for (int s : mem_seq_lens) check_ring_split(layouts.front(), s, n_ranks);
  } catch (const std::exception& e) {
    error = e.what();
  }
  error = mpi::agree_on_error(error);
  if (show_help) {
    if (is_root) std::cout << desc << "\n";
    return 0;
  }
  if (!error.empty()) {
    if (is_root) std::fprintf(stderr, "bench_ring: error: %s (see --help)\n", error.c_str());
    return 2;
  }

  omp_set_num_threads(o.threads_per_rank);
  openblas_set_num_threads(1);
  const bool causal = !o.no_causal;
  const double t_start = wall_seconds(), cpu_start_s = process_cpu_seconds();
  const double load_start = load_average_1min();
  const SystemCpu machine_start = system_cpu();
  const Report report(o.json, is_root);

  // ---- what ran where ----
  const int cores = available_cores();
  const bool one_host = single_host();
  report.comment("bench_ring: ring attention scaling, overlap and memory (RingAttention over mpi::RingExchange)");
  report.comment(format("cpu: %s; %d rank(s) x %d thread(s); %d core(s) available to rank 0 "
                        "(std::thread::hardware_concurrency %u)",
                        cpu_model_name().c_str(), n_ranks, o.threads_per_rank, cores,
                        std::thread::hardware_concurrency()));
  if (!one_host)
    report.comment("ranks span several hosts: the oversubscription check below compares with one host's cores");
  if (n_ranks * o.threads_per_rank > cores)
    report.comment(format("OVERSUBSCRIBED: %d rank-threads on %d cores; ranks share cores, so efficiency "
                          "here says nothing about scaling",
                          n_ranks * o.threads_per_rank, cores));
  else
    report.comment(format("not oversubscribed: %d rank-threads on %d cores", n_ranks * o.threads_per_rank, cores));
  report.comment(format("openblas: %s kernels (%s)", openblas_core_name().c_str(), openblas_config().c_str()));
  if (!openblas_fallback_warning().empty()) report.comment(openblas_fallback_warning());
  report.comment(format("problem: batch 1, heads %d, kv_heads %d, head_dim %d, %s, block %dx%d",
                        o.heads, o.kv_heads, o.head_dim, causal ? "causal" : "full", o.block_q, o.block_k));

  auto backend = device::create_backend(o.device);
  mpi::RingExchange ring(o.timeout_s);
  RingOptions ring_options;
  ring_options.causal = causal;
  ring_options.tiling = {o.block_q, o.block_k};
  ring_options.transfer_path = path_choice;
  ring_options.wait_each_step = true;  // compute_ms = the kernel's time on asynchronous backends too
  RingAttention attention(*backend, ring, ring_options);
  {
    std::string why;
    mpi::choose_transfer_path(backend->capabilities(), path_choice, &why);
    report.comment(format("device: %s (%s); ring transfer path: %s", o.device.c_str(),
                          backend->capabilities().async_execution ? "asynchronous" : "kernels run at submission",
                          why.c_str()));
  }

  // ---- memory, first: nothing large has been allocated yet ----
  if (!o.no_mem) {
    const double baseline_bytes = static_cast<double>(peak_rss_bytes());
    Table table("ring_memory",
                {{"layout", "-"}, {"seq", "tokens"}, {"ranks", "-"}, {"n_local", "tokens"}, {"heads", "-"},
                 {"pass", "-"}, {"run_ms", "ms"}, {"shard_mib", "MiB"}, {"baseline_mib", "MiB"},
                 {"peak_rss_mib", "MiB"}, {"growth_mib", "MiB"}, {"growth_per_shard", "x"},
                 {"growth_ratio", "x_first"}, {"shard_ratio", "x_first"}});
    table.comment("peak RSS (getrusage high-water mark) per rank, max over ranks, after one ring run at each seq,");
    table.comment("sizes in increasing order and before any other benchmark; heads = kv_heads = 1 to keep the longest run affordable");
    table.comment("baseline = peak RSS after MPI start-up, before any benchmark allocation; growth = peak - baseline");
    table.comment("shard = this rank's q, k, v, pos, seg; growth_per_shard = growth / shard; *_ratio: relative to the first row");
    table.comment(o.mem_backward ? "pass fwdbwd: forward then backward (gradients, dK/dV travelling buffers included)"
                                 : "pass fwd: forward only (--mem-backward adds the backward's buffers)");
    double first_growth = 0, first_shard = 0;
    for (int seq_len : mem_seq_lens) {
      RingRun run;
      std::size_t shard_bytes = 0;
      int n_local = 0;
      {
        RingProblem p(*backend, layouts.front(), seq_len, 1, 1, o.head_dim, o.mem_backward, rank, n_ranks);
        shard_bytes = p.shard_bytes;
        n_local = p.shard.n_local;
        run = run_ring(attention, p, o.mem_backward);
      }
      const double peak = static_cast<double>(peak_rss_bytes());
      const Spread peak_spread = spread(peak), growth = spread(peak - baseline_bytes);
      const Spread time = spread(run.total_s);
      const double shard = static_cast<double>(shard_bytes);
      if (first_growth == 0) {
        first_growth = growth.max;
        first_shard = shard;
      }
      table.add_row({Cell::text(layout_name(layouts.front())), Cell::integer(seq_len), Cell::integer(n_ranks),
                     Cell::integer(n_local), Cell::integer(1), Cell::text(o.mem_backward ? "fwdbwd" : "fwd"),
                     Cell::number(time.max * 1e3, 1), Cell::number(shard / kMiB, 2),
                     Cell::number(spread(baseline_bytes).max / kMiB, 1), Cell::number(peak_spread.max / kMiB, 1),
                     Cell::number(growth.max / kMiB, 1), Cell::number(growth.max / shard, 2),
                     Cell::number(growth.max / first_growth, 2), Cell::number(shard / first_shard, 2)});
    }
    report.table(table);
    if (mem_seq_lens.size() > 1) {
      const Cell& growth_ratio = table.rows().back()[12];
      const Cell& shard_ratio = table.rows().back()[13];
      report.comment(format("memory %d -> %d tokens: RSS growth x%s for shard growth x%s "
                            "(equal: per-rank memory linear in the shard, O(seq/ranks))",
                            mem_seq_lens.front(), mem_seq_lens.back(), growth_ratio.as_text().c_str(),
                            shard_ratio.as_text().c_str()));
    }
  }

  // ---- reference point: single-thread sgemm, rank 0 alone and all ranks at once ----
  double sgemm_gflops = 0;
  {
    const double alone = from_root(is_root ? measure_sgemm(1).gflops : 0.0);
    mpi::barrier();
    const Spread together = spread(measure_sgemm(1).gflops);
    sgemm_gflops = alone;
    report.comment(format("sgemm (OpenBLAS, n=2048, 1 thread): %.1f GFLOP/s on rank 0 alone; "
                          "min/avg/max %.1f/%.1f/%.1f with all %d ranks at once",
                          alone, together.min, together.avg, together.max, n_ranks));
  }

  // ---- scaling and per-step overlap ----
  Table scaling("ring_scaling",
                {{"layout", "-"}, {"seq", "tokens"}, {"ranks", "-"}, {"pass", "-"}, {"reps", "-"},
                 {"t1_ms", "ms"}, {"ring_min_ms", "ms"}, {"ring_avg_ms", "ms"}, {"ring_max_ms", "ms"},
                 {"efficiency", "t1/(n*ring)"}, {"efficiency_best", "t1/(n*ring)"}, {"gflops_per_rank", "GFLOP/s"},
                 {"ratio", "x_sgemm1"}});
  scaling.comment("t1: one kernel call over the whole sequence on rank 0 alone (1 thread), the other ranks idle;");
  scaling.comment("each rep times t1 then the ring (interleaved, so load drift hits both alike); medians over reps");
  scaling.comment("ring_*: min/avg/max over ranks of the time from a barrier to the end of the pass, median over reps");
  scaling.comment("efficiency = t1 / (ranks * ring_max_ms) from the medians; efficiency_best: the same from the fastest "
                  "t1 and fastest ring rep (the least disturbed, on a shared machine)");
  scaling.comment("gflops_per_rank = flops / ranks / ring_max "
                  "(fwd 4*s^2*h*d, /2 causal; fwdbwd 3.5x); ratio = gflops_per_rank / sgemm 1 thread");
  scaling.comment(format("target: efficiency >= %.2f at ranks = %d (zigzag, causal, one thread per rank)",
                         kTargetEfficiency, kTargetRanks));
  Table steps("ring_steps",
              {{"layout", "-"}, {"seq", "tokens"}, {"pass", "-"}, {"step", "-"}, {"compute_ms", "ms"},
               {"compute_max_ms", "ms"}, {"imbalance_ms", "ms"}, {"exposed_wait_ms", "ms"},
               {"exposed_wait_min_ms", "ms"}, {"exposed_wait_max_ms", "ms"}, {"sent_mib", "MiB/rank"},
               {"bare_comm_ms", "ms"}, {"busy_pct", "%"}, {"hidden_pct", "%"}});
  steps.comment("per ring step, mean over the timed reps; compute: avg and max over ranks, imbalance = max - min;"
                " exposed_wait: avg, min and max over ranks");
  steps.comment("bare_comm_ms: the step's bytes moved one hop round the ring with no compute (max over ranks, median of 5)");
  steps.comment("busy_pct = 100*compute/(compute+exposed_wait) (avgs); hidden_pct = 100*(1 - exposed_wait_min/bare_comm), in [0,100]");
  steps.comment("a rank's wait also covers a slower neighbour (imbalance); the last rank to finish computing waits only for"
                " the transfer, so hidden_pct uses the smallest wait over ranks");
  steps.comment("bwd rows: the backward's steps (dK/dV travel one step behind K/V, so bytes include them);"
                " the last bwd step's wait includes bringing this rank's dK/dV home");
  std::map<std::size_t, double> bare_cache;
  Table hops_table("ring_hops", {{"layout", "-"}, {"seq", "tokens"}, {"pass", "-"}, {"hops", "-"},
                                 {"exposed_ms_per_hop", "ms"}, {"bare_ms_per_hop", "ms"}, {"hidden_pct", "%"}});
  hops_table.comment("exposed communication per ring hop: mean over the steps that move data of exposed_wait avg "
                     "(ring_steps); bare: the same bytes with no compute; hidden_pct = 100*(1 - exposed/bare) in [0,100]");
  auto add_hops_row = [&](const std::string& layout, int seq_len, const char* pass, const HopSummary& h) {
    if (h.hops == 0) return;
    const double exposed = h.exposed_s / h.hops, bare = h.bare_s / h.hops;
    hops_table.add_row({Cell::text(layout), Cell::integer(seq_len), Cell::text(pass), Cell::integer(h.hops),
                        Cell::number(exposed * 1e3, 3), Cell::number(bare * 1e3, 3),
                        Cell::number(100.0 * std::clamp(1.0 - exposed / bare, 0.0, 1.0), 1)});
  };

  double target_efficiency = std::numeric_limits<double>::quiet_NaN();
  double target_efficiency_best = std::numeric_limits<double>::quiet_NaN();
  for (int seq_len : seq_lens) {
    // Single-rank baseline: rank 0 only holds the whole-sequence problem.
    std::unique_ptr<DenseAttention> dense;
    if (is_root) {
      AttentionCase c;
      c.seq_len = seq_len;
      c.heads = o.heads;
      c.kv_heads = o.kv_heads;
      c.head_dim = o.head_dim;
      c.causal = causal;
      c.tiling = {o.block_q, o.block_k};
      dense = std::make_unique<DenseAttention>(*backend, c, o.backward);
      dense->warm_up();
    }
    const double fwd_flops = attention_fwd_flops(1, seq_len, seq_len, o.heads, o.head_dim, causal);

    for (Layout layout : layouts) {
      const std::string name = layout_name(layout);
      {  // warm-up on a short sequence: MPI connections, thread pools, code paths
        const int warm_seq = std::min(seq_len, kWarmupTokensPerRank * n_ranks);
        RingProblem warm(*backend, layout, warm_seq, o.heads, o.kv_heads, o.head_dim, o.backward, rank, n_ranks);
        run_ring(attention, warm, o.backward);
      }
      RingProblem p(*backend, layout, seq_len, o.heads, o.kv_heads, o.head_dim, o.backward, rank, n_ranks);
      // Each rep times t1 (rank 0 alone; the others wait in the broadcast) and then the ring,
      // so a load change on a shared machine hits both sides of the efficiency alike.
      std::vector<double> t1_fwd, t1_fwdbwd, fwd_min, fwd_avg, fwd_max, tot_min, tot_avg, tot_max;
      std::vector<std::vector<RingStepStats>> fwd_steps, bwd_steps;
      double spent_s = 0;  // identical on every rank (sum of reduced times), so all agree
      while (another_run(static_cast<int>(tot_max.size()), o.reps, spent_s, o.budget_s)) {
        double fwd_s = 0, bwd_s = 0;
        if (is_root) {
          fwd_s = dense->forward_s();
          bwd_s = o.backward ? dense->backward_s() : 0.0;
        }
        t1_fwd.push_back(from_root(fwd_s));
        t1_fwdbwd.push_back(from_root(fwd_s + bwd_s));
        const RingRun run = run_ring(attention, p, o.backward);
        const Spread f = spread(run.fwd_s), t = spread(run.total_s);
        fwd_min.push_back(f.min);
        fwd_avg.push_back(f.avg);
        fwd_max.push_back(f.max);
        tot_min.push_back(t.min);
        tot_avg.push_back(t.avg);
        tot_max.push_back(t.max);
        spent_s += t1_fwdbwd.back() + t.max;
        fwd_steps.push_back(run.fwd_steps);
        if (o.backward) bwd_steps.push_back(run.bwd_steps);
      }
      const int reps = static_cast<int>(tot_max.size());
      auto add_scaling_row = [&](const char* pass, const std::vector<double>& t1s, const std::vector<double>& mins,
                                 const std::vector<double>& avgs, const std::vector<double>& maxs,
                                 double flops) {
        const double t1 = median(t1s), ring_max = median(maxs);
        const double efficiency = t1 / (n_ranks * ring_max);
        const double efficiency_best = *std::min_element(t1s.begin(), t1s.end()) /
                                       (n_ranks * *std::min_element(maxs.begin(), maxs.end()));
        const double gflops_per_rank = flops / n_ranks / ring_max * 1e-9;
        scaling.add_row({Cell::text(name), Cell::integer(seq_len), Cell::integer(n_ranks), Cell::text(pass),
                         Cell::integer(reps), Cell::number(t1 * 1e3, 1), Cell::number(median(mins) * 1e3, 1),
                         Cell::number(median(avgs) * 1e3, 1), Cell::number(ring_max * 1e3, 1),
                         Cell::number(efficiency, 3), Cell::number(efficiency_best, 3),
                         Cell::number(gflops_per_rank, 1), Cell::number(gflops_per_rank / sgemm_gflops, 3)});
        if (layout == Layout::zigzag && causal && n_ranks == kTargetRanks && o.threads_per_rank == 1) {
          target_efficiency = std::isnan(target_efficiency) ? efficiency : std::min(target_efficiency, efficiency);
          target_efficiency_best = std::isnan(target_efficiency_best)
                                       ? efficiency_best
                                       : std::min(target_efficiency_best, efficiency_best);
        }
      };
      add_scaling_row("fwd", t1_fwd, fwd_min, fwd_avg, fwd_max, fwd_flops);
      if (o.backward)
        add_scaling_row("fwdbwd", t1_fwdbwd, tot_min, tot_avg, tot_max, fwd_flops * (1.0 + kBwdFlopsPerFwdFlop));
      HopSummary fwd_hops, bwd_hops;
      add_step_rows(steps, name, seq_len, "fwd", fwd_steps, ring, bare_cache, &fwd_hops);
      add_hops_row(name, seq_len, "fwd", fwd_hops);
      if (o.backward) {
        add_step_rows(steps, name, seq_len, "bwd", bwd_steps, ring, bare_cache, &bwd_hops);
        add_hops_row(name, seq_len, "bwd", bwd_hops);
      }
    }
  }
  report.table(scaling);
  report.table(steps);
  report.table(hops_table);
  if (!o.no_fsdp) report.table(fsdp_overlap_table(*backend, path_choice, fsdp_mibs, o.fsdp_layers, o.fsdp_layer_ratio, o.reps));
  if (!std::isnan(target_efficiency))
    report.comment(format("worst zigzag causal efficiency at %d ranks: %.3f (target %.2f: %s); "
                          "from the least disturbed reps: %.3f (%s)",
                          kTargetRanks, target_efficiency, kTargetEfficiency,
                          target_efficiency >= kTargetEfficiency ? "met" : "MISSED", target_efficiency_best,
                          target_efficiency_best >= kTargetEfficiency ? "met" : "MISSED"));
  else
    report.comment(format("target not applicable to this run (needs zigzag, causal, %d ranks, 1 thread per rank)",
                          kTargetRanks));
  const double wall_s = wall_seconds() - t_start;
  const double own_cpu_s = process_cpu_seconds() - cpu_start_s;
  const Spread cpu_use = spread(own_cpu_s / (wall_s * o.threads_per_rank));
  const double all_ranks_cpu_s = mpi::allreduce_sum(own_cpu_s);  // one host assumed (see above)
  report.comment(format("total %.1f s", mpi::allreduce_max(wall_s)));
  report.comment(format("noise: each rank used %.0f-%.0f%% of its thread's core over the run (MPI waits spin, "
                        "so well below 100%% means other processes took cores); load average %.2f at start, "
                        "%.2f at end (rank 0)",
                        100 * cpu_use.min, 100 * cpu_use.max, load_start, load_average_1min()));
  report.comment("noise: " + machine_noise(machine_start, system_cpu(), all_ranks_cpu_s));
  return 0;
}
