// bench_attention_kernels: speed of the fast CPU attention kernels against this machine's own
// sgemm, measured in the same run on the same thread count.
//
// What one row measures: a single kernel call covering the whole sequence (n_q = n_k = seq,
// causal, positions 0..seq-1, one segment, batch 1), i.e. one ring step at ring size 1.
//   fwd     attn_fwd_step (outputs reset outside the timed region)
//   fwdbwd  the forward plus attn_row_dot + attn_bwd_step (gradients zeroed outside it)
// A warm-up of both on a 1024-token prefix (threads started, code warm; every buffer is
// already touched by its untimed fill), then up to --reps timed runs, fewer when one more
// would take the case past --budget-s; the median is reported.
// FLOPs: forward 4*b*s^2*h*d halved for causal, backward 2.5x the forward (bench_common.h).
// ratio = achieved GFLOP/s / sgemm GFLOP/s, sgemm measured right before and after each case on
// the same threads (the better one is used): numbers compare across machines, and a shared
// machine's drifting load cannot flatter a case through a disturbed reference. Serial program: no MPI (the kernels never call it).
//
// Usage: OMP_NUM_THREADS=2 bench_attention_kernels [--seq 4096,8192] [--head-dim 64,128]
//        [--heads 8] [--threads N] [--reps 3] [--quick] [--json]
#include <omp.h>

#include "device/cpu/blas_kernel_select.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/cpu/cpu_backend.h"
#include "perf/bench_common.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"

namespace po = boost::program_options;
using namespace rw;
using namespace rw::perf;

namespace {

// Targets from the performance issue: fraction of sgemm throughput the kernels must reach.
constexpr double kTargetFwdRatio = 0.6;
constexpr double kTargetFwdBwdRatio = 0.45;

struct Options {
  int n_threads = 0;  // 0: omp_get_max_threads()
  std::string seq_text = "4096,8192,16384";
  std::string head_dim_text = "64,128";
  int heads = 8;
  int block_q = 256, block_k = 256;
  int reps = 3;
  double budget_s = 25;  // per case: timed runs of fwd+bwd together
  bool quick = false, json = false;
};

}  // namespace

int main(int argc, char** argv) {
  rw::device::cpu::select_blas_kernel(argc, argv);  // before MPI: may re-exec with OPENBLAS_CORETYPE
  Options o;
  std::vector<int> seq_lens, head_dims;
  po::options_description desc("bench_attention_kernels options");
  desc.add_options()
      ("help,h", "show this help")
      ("threads", po::value(&o.n_threads), "OpenMP threads (default: OMP_NUM_THREADS / all cores)")
      ("seq", po::value(&o.seq_text)->default_value(o.seq_text), "sequence lengths, comma separated")
      ("head-dim", po::value(&o.head_dim_text)->default_value(o.head_dim_text), "head dims, comma separated")
      ("heads", po::value(&o.heads)->default_value(o.heads), "query heads (= kv heads)")
      ("block-q", po::value(&o.block_q)->default_value(o.block_q), "query rows per tile")
      ("block-k", po::value(&o.block_k)->default_value(o.block_k), "key rows per tile")
      ("reps", po::value(&o.reps)->default_value(o.reps), "timed runs per case (after one warm-up)")
      ("budget-s", po::value(&o.budget_s)->default_value(o.budget_s),
       "seconds of timed fwd+bwd runs per case: no further rep once one more would exceed it")
      ("quick", po::bool_switch(&o.quick), "one small case (smoke test)")
      ("json", po::bool_switch(&o.json), "JSON Lines instead of tables");
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    if (o.quick) {
      o.seq_text = "1024";
      o.head_dim_text = "64";
      o.heads = 2;
      o.reps = 1;
    }
    seq_lens = parse_int_list(o.seq_text, "seq");
    head_dims = parse_int_list(o.head_dim_text, "head-dim");
    if (o.heads <= 0 || o.block_q <= 0 || o.block_k <= 0 || o.reps <= 0)
      throw InputError("--heads, --block-q, --block-k and --reps must be positive");
    if (o.n_threads < 0) throw InputError("--threads must be positive");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention_kernels: error: %s (see --help)\n", e.what());
    return 2;
  }
  if (o.n_threads == 0) o.n_threads = omp_get_max_threads();
  omp_set_num_threads(o.n_threads);

  const Report report(o.json, true);
  const double t_start = wall_seconds(), cpu_start_s = process_cpu_seconds();
  const double load_start = load_average_1min();
  const SystemCpu machine_start = system_cpu();
  report.comment("bench_attention_kernels: fast CPU attention kernels vs this machine's sgemm");
  report.comment(format("cpu: %s, %d core(s) available, L3 %.0f MiB; %d OpenMP thread(s)",
                        cpu_model_name().c_str(), available_cores(),
                        static_cast<double>(l3_cache_bytes()) / (1 << 20), o.n_threads));
  if (o.n_threads > available_cores())
    report.comment(format("WARNING: %d threads on %d cores (oversubscribed): numbers are not meaningful",
                          o.n_threads, available_cores()));

  report.comment(format("openblas: %s kernels (%s)", openblas_core_name().c_str(), openblas_config().c_str()));
  for (int head_dim : head_dims)
    report.comment(format("attention forward kernel, head_dim %d: %s (RINGWORLD_ATTN_FWD_KERNEL=blas|fused|auto)",
                          head_dim,
                          device::cpu::fwd_kernel_name(device::cpu::resolve_fwd_kernel(device::cpu::FwdKernel::automatic, head_dim))));
  if (!openblas_fallback_warning().empty()) report.comment(openblas_fallback_warning());

  // Reference points, same threads, same run. sgemm is measured right before and right after
  // each case and that case's ratios use the faster of the two: on a shared machine the load
  // drifts over a sweep, and a reference taken minutes earlier would flatter or penalise a
  // case at random.
  const int sgemm_n = o.quick ? 1024 : 2048, sgemm_runs = o.quick ? 2 : 3;
  const TriadMeasurement triad =
      measure_triad(o.n_threads, o.quick ? std::size_t(64) << 20 : 0, o.quick ? 2 : 5);
  report.comment(format("triad: %.1f GB/s (OpenMP, 3 x %.0f MiB arrays%s, %d thread(s), median of %d)",
                        triad.gbps, static_cast<double>(triad.n_bytes_per_array) / (1 << 20),
                        o.quick ? " (quick: may fit in cache)" : "", triad.n_threads, triad.n_runs));

  struct Row {
    int seq_len, head_dim, reps;
    double sgemm_gflops, fwd_s, bwd_s, fwdbwd_s, fwd_gflops, fwdbwd_gflops;
  };
  std::vector<Row> rows;
  auto backend = device::make_backend("cpu");
  for (int head_dim : head_dims) {
    for (int seq_len : seq_lens) {
      AttentionCase c;
      c.seq_len = seq_len;
      c.heads = c.kv_heads = o.heads;
      c.head_dim = head_dim;
      c.causal = true;
      c.tiling = {o.block_q, o.block_k};
      DenseAttention attention(*backend, c, /*with_backward=*/true);
      const double sgemm_before = measure_sgemm(o.n_threads, sgemm_n, sgemm_runs).gflops;
      attention.warm_up();
      std::vector<double> fwd_s, bwd_s, fwdbwd_s;
      double spent_s = 0;
      while (another_run(static_cast<int>(fwdbwd_s.size()), o.reps, spent_s, o.budget_s)) {
        fwd_s.push_back(attention.forward_s());
        bwd_s.push_back(attention.backward_s());
        fwdbwd_s.push_back(fwd_s.back() + bwd_s.back());
        spent_s += fwdbwd_s.back();
      }
      // The better of the two: a reference caught by another process's burst must not flatter
      // the case's ratios.
      const double sgemm_gflops =
          std::max(sgemm_before, measure_sgemm(o.n_threads, sgemm_n, sgemm_runs).gflops);
      const double fwd_flops = attention.fwd_flops();
      const double fwdbwd_flops = fwd_flops * (1.0 + kBwdFlopsPerFwdFlop);
      rows.push_back({seq_len, head_dim, static_cast<int>(fwdbwd_s.size()), sgemm_gflops, median(fwd_s),
                      median(bwd_s), median(fwdbwd_s), fwd_flops / median(fwd_s) * 1e-9,
                      fwdbwd_flops / median(fwdbwd_s) * 1e-9});
    }
  }

  Table table("attention_kernels",
              {{"seq", "tokens"}, {"head_dim", "-"}, {"heads", "-"}, {"threads", "-"}, {"reps", "-"},
               {"sgemm_gflops", "GFLOP/s"}, {"fwd_ms", "ms"}, {"fwd_gflops", "GFLOP/s"},
               {"fwd_ratio", "x_sgemm"}, {"bwd_ms", "ms"}, {"fwdbwd_ms", "ms"},
               {"fwdbwd_gflops", "GFLOP/s"}, {"fwdbwd_ratio", "x_sgemm"}});
  table.comment(format("one kernel call over the whole sequence: batch 1, causal, block %dx%d; "
                       "median of reps after a warm-up on a 1024-token prefix",
                       o.block_q, o.block_k));
  table.comment(format("sgemm_gflops: OpenBLAS n=%d on %d thread(s), median of %d, the better of just before and just after the case",
                       sgemm_n, o.n_threads, sgemm_runs));
  table.comment("flops: fwd 4*b*s^2*h*d/2 (causal), fwdbwd 3.5x fwd; ratio = GFLOP/s / sgemm_gflops");
  table.comment(format("target: fwd_ratio >= %.2f, fwdbwd_ratio >= %.2f", kTargetFwdRatio,
                       kTargetFwdBwdRatio));
  double worst_fwd_ratio = 1e30, worst_fwdbwd_ratio = 1e30;
  for (const Row& r : rows) {
    worst_fwd_ratio = std::min(worst_fwd_ratio, r.fwd_gflops / r.sgemm_gflops);
    worst_fwdbwd_ratio = std::min(worst_fwdbwd_ratio, r.fwdbwd_gflops / r.sgemm_gflops);
    table.add_row({Cell::integer(r.seq_len), Cell::integer(r.head_dim), Cell::integer(o.heads),
                   Cell::integer(o.n_threads), Cell::integer(r.reps), Cell::number(r.sgemm_gflops, 1),
                   Cell::number(r.fwd_s * 1e3, 1), Cell::number(r.fwd_gflops, 1),
                   Cell::number(r.fwd_gflops / r.sgemm_gflops, 3), Cell::number(r.bwd_s * 1e3, 1),
                   Cell::number(r.fwdbwd_s * 1e3, 1), Cell::number(r.fwdbwd_gflops, 1),
                   Cell::number(r.fwdbwd_gflops / r.sgemm_gflops, 3)});
  }
  report.table(table);
  report.comment(format("worst fwd_ratio %.3f (target %.2f: %s); worst fwdbwd_ratio %.3f (target %.2f: %s)",
                        worst_fwd_ratio, kTargetFwdRatio, worst_fwd_ratio >= kTargetFwdRatio ? "met" : "MISSED",
                        worst_fwdbwd_ratio, kTargetFwdBwdRatio,
                        worst_fwdbwd_ratio >= kTargetFwdBwdRatio ? "met" : "MISSED"));
  const double wall_s = wall_seconds() - t_start;
  const double own_cpu_s = process_cpu_seconds() - cpu_start_s;
  const double cpu_use = own_cpu_s / (wall_s * o.n_threads);
  report.comment(format("total %.1f s, peak RSS %.0f MiB (includes the triad arrays)", wall_s,
                        static_cast<double>(peak_rss_bytes()) / (1 << 20)));
  report.comment(format("noise: this process used %.0f%% of %d core(s) over the run (well below 100%%: other "
                        "processes took cores); load average %.2f at start, %.2f at end",
                        100 * cpu_use, o.n_threads, load_start, load_average_1min()));
  report.comment("noise: " + machine_noise(machine_start, system_cpu(), own_cpu_s));
  return 0;
}
