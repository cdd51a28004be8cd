// bench_command.cpp: `ringworld bench`: training throughput and the ring's behaviour at one
// point of a scaling study. Runs W warm-up and K timed training steps (the very Trainer that
// `train` uses) on synthetic data, one sequence per dp group, nothing written but one CSV row.
// Every figure is a median over the K steps; per-step figures are reduced over ranks first.
//   tokens/s        tokens per step / median step time (a step ends at the slowest rank)
//   GFLOP/s, MFU    3 x forward_flops (train's count: causal, the RingAttention paper's formula)
//                   / median step; MFU against the sgemm rate of all ranks measured in this run
//   hop             one ring step of one layer: the forward and the backward each take sp of
//                   them per layer, so a training step has 2 x sp x layers hops per rank
//   hop compute     the attention kernels' time per hop (mean over ranks)
//   hop wait        time per hop spent waiting for the ring after the compute (exposed comm)
//   hop bare comm   the average bytes of a hop moved round the ring with no compute (after the
//                   steps); exposed fraction = wait / (compute + wait)
//   bytes, messages what this rank posted to its ring successor per step (RingExchange counters)
#include <boost/program_options.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "device/backend.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "mpi/watchdog.h"
#include "src/attention/layout.h"
#include "src/bench/csv_append.h"
#include "src/bench/node_placement.h"
#include "src/bench/ring_probe.h"
#include "src/bench/stats.h"
#include "src/cli/commands.h"
#include "src/cli/precision_option.h"
#include "src/cli/model_options.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/train/run_driver.h"
#include "src/train/run_plan.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/data_sources.h"
#include "src/train/trainer.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

const char* kBenchHelp =
    "usage: mpirun -np N ringworld bench [options]        (N = dp x sp; default sp = N, dp = 1)\n"
    "\n"
    "Training throughput and ring communication at one configuration: W warm-up and K timed\n"
    "steps of `train` on synthetic data (one sequence of --seq-len tokens per dp group), no\n"
    "checkpoints. Prints a table; --csv FILE appends one row (header when the file is new).\n"
    "perf/scaling/sweep.sh runs it over ring sizes, sequence lengths, blocks and layouts.\n"
    "Exit status: 0 done, 1 bad input, 2 bad options.\n";

constexpr int kProbeRepeats = 10;

struct BenchPlan {
  std::string model_preset = "small", model_name, layout = "zigzag", device = "cpu", csv, label, precision_text = "fp32";
  model::Precision precision = model::Precision::fp32;
  model::LlamaConfig model;
  int seq_len = 4096, dp = 0, sp = 0, block_q = 256, block_k = 256, steps = 3, warmup = 1;
  int64_t ffn_chunk = 1024;
  uint64_t seed = 1;
  double timeout_s = 900;
};

const char* kCsvHeader =
    "label,ranks,dp,sp,seq_len,tokens_per_rank,layout,block_q,block_k,model,parameters,threads_per_rank,"
    "ranks_on_node,cores_on_node,oversubscribed,warmup_steps,steps,tokens_per_step,tokens_per_s,step_s_median,"
    "step_s_min,step_s_max,gflops,peak_gflops,mfu,hops_per_step,hop_compute_ms,hop_wait_ms,hop_bare_comm_ms,"
    "exposed_comm_frac,bytes_per_step_per_rank,messages_per_step_per_rank,peak_rss_mib,load_1m,unix_time,precision";

std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

double load_average_1m() {
  double load[1] = {0};
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

void check_text(const std::string& what, const std::string& text) {
  if (text.find_first_of(",\"\n\r") != std::string::npos)
    throw InputError(what + " '" + text + "' must not contain commas, quotes or line breaks (it goes into a CSV cell)");
}

// Parses the command line into plan; returns false after --help. Throws on bad options.
bool parse(int argc, char** argv, BenchPlan& plan) {
  po::options_description opts("bench"), model_opts("model (Hugging Face LlamaConfig names override the preset)");
  opts.add_options()
      ("help,h", "show this help")
      ("model", po::value(&plan.model_preset)->default_value(plan.model_preset), "preset: tiny | small | 7b")
      ("seq-len", count(&plan.seq_len)->min(1)->default_value(plan.seq_len), "tokens per sequence (one per dp group; K/M suffixes)")
      ("dp", number(&plan.dp)->min(0)->default_value(0), "data-parallel groups (0: world / sp)")
      ("sp", number(&plan.sp)->min(0)->default_value(0), "ranks per ring (0: world / dp)")
      ("layout", po::value(&plan.layout)->default_value(plan.layout), "contiguous | striped | zigzag")
      ("block-q", count(&plan.block_q)->min(1)->default_value(plan.block_q), "attention query tile rows")
      ("block-k", count(&plan.block_k)->min(1)->default_value(plan.block_k), "attention key tile rows")
      ("steps", number(&plan.steps)->min(1)->default_value(plan.steps), "timed steps (medians over them)")
      ("warmup", number(&plan.warmup)->min(0)->default_value(plan.warmup), "untimed steps first")
      ("csv", po::value(&plan.csv), "append one row to this CSV file (header when new)")
      ("label", po::value(&plan.label), "free text for the CSV's label column (sweep, machine)")
      ("seed", number(&plan.seed)->default_value(plan.seed), "seed of initialisation and data")
      ("device", po::value(&plan.device)->default_value(plan.device), device_option_help().c_str())
      ("precision", precision_value(&plan.precision_text), kTrainingPrecisionHelp)
      ("timeout", number(&plan.timeout_s)->min(0)->default_value(plan.timeout_s), "seconds a rank may go without progress before the watchdog reports where every rank is and ends the job (0: off)");
  add_model_options(model_opts);
  po::options_description all;
  all.add(opts).add(model_opts);
  po::variables_map vm;
  store_command_line(parse_command_line(argc, argv, all), vm);
  po::notify(vm);
  if (vm.count("help")) {
    if (mpi::world_rank() == 0) std::cout << kBenchHelp << "\n" << all << "\n";
    return false;
  }
  plan.model = model::preset_config(plan.model_preset);
  plan.model_name = plan.model_preset;
  const std::string overrides = apply_model_options(vm, plan.model);
  if (!overrides.empty()) plan.model_name += "+" + overrides;
  plan.model.validate();
  const Layout layout = parse_layout(plan.layout);
  plan.precision = model::parse_precision(plan.precision_text);
  const int world = mpi::world_size();
  train::resolve_grid(world, plan.dp, plan.sp);
  check_ring_split(layout, plan.seq_len, plan.sp);
  check_text("--label", plan.label);
  return true;
}

struct Measured {
  std::vector<double> step_s, hop_compute_s, hop_wait_s;
  double loss = 0;
  int64_t tokens_per_step = 0;
  double bytes_per_step = 0, messages_per_step = 0;  // mean over ranks
};

}  // namespace

int run_bench(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  BenchPlan plan;
  std::string error;
  bool go = true;
  try {
    go = parse(argc, argv, plan);
  } catch (const po::error& e) {  // the same command line on every rank: all fail alike
    if (is_root) std::fprintf(stderr, "ringworld bench: error: %s (see ringworld bench --help)\n", e.what());
    return 2;
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root) std::fprintf(stderr, "ringworld bench: error: %s\n", error.c_str());
    return 1;
  }
  if (!go) return 0;
  auto fail = [&](const std::string& message) {
    if (is_root) std::fprintf(stderr, "ringworld bench: error: %s\n", message.c_str());
    return 1;
  };
  // The CSV target is checked before minutes of compute (rank 0 owns the file).
  if (is_root && !plan.csv.empty()) {
    try {
      bench::append_csv_row(plan.csv, kCsvHeader, "", true);
    } catch (const InputError& e) {
      error = e.what();
    }
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);

  const double load_at_start = load_average_1m();
  std::unique_ptr<mpi::ProcessGrid> grid;
  std::unique_ptr<device::Backend> backend;
  try {
    grid = std::make_unique<mpi::ProcessGrid>(plan.dp, plan.sp, plan.timeout_s > 0 ? 2 * plan.timeout_s + 30 : 0);
    backend = device::make_backend(plan.device);
    check_backend_precision(*backend, plan.device, plan.precision);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  if (!(error = train::memory_preflight_error(plan.model, grid->size())).empty()) return fail(error);
  mpi::Watchdog watchdog(plan.timeout_s);  // a hung point ends with a report, not at the sweep's time limit

  const int threads = std::max(1, omp_get_max_threads());
  const bench::NodePlacement placement = bench::measure_node_placement(*grid, threads);
  // The backend's GEMM rate with the resources its dense GEMMs run with (cpu: OpenBLAS's threads).
  const double peak_before = grid->allreduce_sum(backend->measure_gemm_gflops());
  const Layout layout = parse_layout(plan.layout);
  const int tokens_per_rank = static_cast<int>(local_token_count(plan.seq_len, plan.sp));
  const int hops_per_step = 2 * plan.sp * static_cast<int>(plan.model.num_hidden_layers);
  if (is_root) {
    std::printf("# ringworld bench: %d rank(s) = dp %d x sp %d, %s layout, blocks %d x %d, seq_len %d (%d tokens per rank), "
                "%s\n",
                grid->size(), plan.dp, plan.sp, plan.layout.c_str(), plan.block_q, plan.block_k, plan.seq_len,
                tokens_per_rank, model::precision_name(plan.precision));
    std::printf("# model %s: %s\n", plan.model_name.c_str(), plan.model.describe().c_str());
    std::printf("# node: %d rank(s) x %d thread(s) on %d core(s)%s; %d node(s); load average %.2f at start\n",
                placement.ranks_on_node, threads, placement.cores_on_node,
                placement.oversubscribed ? " -- OVERSUBSCRIBED: ranks time-share cores, not a scaling point" : "",
                placement.nodes, load_at_start);
    std::printf("# %d warm-up + %d timed step(s); hops per step per rank = 2 x sp x layers = %d\n", plan.warmup,
                plan.steps, hops_per_step);
    std::fflush(stdout);
  }

  train::TrainerOptions options;
  options.schedule.kind = train::LrSchedule::Kind::constant;
  options.schedule.peak_lr = 1e-4;
  options.schedule.total_steps = plan.warmup + plan.steps;
  options.tiling = {plan.block_q, plan.block_k};
  options.transformer.ffn_chunk_tokens = plan.ffn_chunk;
  options.transformer.precision = plan.precision;
  data::SourceGeometry geometry;
  geometry.seed = plan.seed;
  geometry.seq_len = plan.seq_len;
  geometry.global_sequences = plan.dp;
  geometry.vocab_size = plan.model.vocab_size;
  geometry.vision_vocab_size = plan.model.vision_vocab_size;
  geometry.dp = grid->dp();
  geometry.dp_rank = grid->dp_rank();
  geometry.sp = grid->sp();
  geometry.sp_rank = grid->sp_rank();
  geometry.layout = layout;
  // One document per sequence: every causal tile is computed, as forward_flops counts them.
  std::unique_ptr<data::DataSource> source;
  try {
    source = data::make_data_source("synthetic:flat", geometry);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  train::Trainer trainer(plan.model, *grid, *backend, *source, options);
  trainer.params().initialize(plan.seed);

  Measured m;
  const double flops_per_step = 3 * train::forward_flops(plan.model, plan.dp, plan.seq_len, true);
  uint64_t bytes0 = 0, messages0 = 0;
  for (int i = 0; i < plan.warmup + plan.steps; ++i) {
    const bool timed = i >= plan.warmup;
    if (i == plan.warmup) bytes0 = grid->ring().bytes_sent(), messages0 = grid->ring().messages_sent();
    const train::StepReport r = trainer.step();
    double ring[2] = {r.ring_compute_s, r.ring_wait_s};
    grid->allreduce_sum(ring, 2);
    if (timed) {
      m.step_s.push_back(r.seconds);
      m.hop_compute_s.push_back(ring[0] / grid->size() / hops_per_step);
      m.hop_wait_s.push_back(ring[1] / grid->size() / hops_per_step);
    }
    m.loss = r.loss;
    m.tokens_per_step = r.tokens;
    if (is_root) {
      std::printf("# step %d/%d%s: %.3f s, loss %.4f, ring compute %.3f s, wait %.3f s (mean over ranks)\n", i + 1,
                  plan.warmup + plan.steps, timed ? "" : " (warm-up)", r.seconds, r.loss, ring[0] / grid->size(),
                  ring[1] / grid->size());
      std::fflush(stdout);
    }
  }
  if (!std::isfinite(m.loss)) return fail("loss is " + std::to_string(m.loss) + ": the model diverged");
  m.bytes_per_step = grid->allreduce_sum(double(grid->ring().bytes_sent() - bytes0)) / grid->size() / plan.steps;
  m.messages_per_step = grid->allreduce_sum(double(grid->ring().messages_sent() - messages0)) / grid->size() / plan.steps;
  const double peak_after = grid->allreduce_sum(backend->measure_gemm_gflops());
  const double peak_gflops = std::max(peak_before, peak_after);
  const double bytes_per_hop = m.bytes_per_step / hops_per_step;
  const int messages_per_hop = static_cast<int>(std::lround(m.messages_per_step / hops_per_step));
  const double bare_hop_s =
      bench::bare_hop_seconds(*grid, static_cast<std::size_t>(std::llround(bytes_per_hop)), messages_per_hop, kProbeRepeats);
  const double peak_rss_mib = mpi::allreduce_max(static_cast<double>(peak_rss_bytes())) / 1048576.0;

  const double step_s = bench::median(m.step_s);
  const double step_min = *std::min_element(m.step_s.begin(), m.step_s.end());
  const double step_max = *std::max_element(m.step_s.begin(), m.step_s.end());
  const double tokens_per_s = m.tokens_per_step / step_s;
  const double gflops = flops_per_step / step_s / 1e9;
  const double mfu = gflops / peak_gflops;
  const double hop_compute = bench::median(m.hop_compute_s), hop_wait = bench::median(m.hop_wait_s);
  const double exposed = hop_compute + hop_wait > 0 ? hop_wait / (hop_compute + hop_wait) : 0.0;
  if (!is_root) return mpi::agree_on_error("").empty() ? 0 : 1;

  std::printf("# sgemm peak over all ranks: %.1f GFLOP/s before the steps, %.1f after (MFU uses the higher)\n",
              peak_before, peak_after);
  std::printf("# exposed = hop wait / (hop compute + hop wait); bare comm = a hop's average bytes (%.0f) rotated with no compute\n",
              bytes_per_hop);
  std::printf("%6s %4s %4s %8s %8s %12s %9s %9s %6s %10s %9s %9s %7s %12s %9s %4s\n", "ranks", "dp", "sp", "seq_len",
              "layout", "tokens_per_s", "step_s", "gflops", "mfu", "hop_comp", "hop_wait", "hop_bare", "exposed",
              "bytes_step", "rss", "osub");
  std::printf("%6s %4s %4s %8s %8s %12s %9s %9s %6s %10s %9s %9s %7s %12s %9s %4s\n", "-", "-", "-", "tokens", "-",
              "tok/s", "s", "GFLOP/s", "-", "ms", "ms", "ms", "-", "B/rank", "MiB", "-");
  std::printf("%6d %4d %4d %8d %8s %12.1f %9.3f %9.2f %6.3f %10.3f %9.3f %9.3f %7.3f %12.0f %9.1f %4s\n", grid->size(),
              plan.dp, plan.sp, plan.seq_len, plan.layout.c_str(), tokens_per_s, step_s, gflops, mfu, 1e3 * hop_compute,
              1e3 * hop_wait, 1e3 * bare_hop_s, exposed, m.bytes_per_step, peak_rss_mib,
              placement.oversubscribed ? "yes" : "no");
  if (placement.oversubscribed)
    std::printf("# OVERSUBSCRIBED: %d rank-thread(s) on %d core(s): these figures say nothing about scaling\n",
                placement.threads_on_node, placement.cores_on_node);

  std::string status;
  if (!plan.csv.empty()) {
    std::ostringstream row;
    row << plan.label << ',' << grid->size() << ',' << plan.dp << ',' << plan.sp << ',' << plan.seq_len << ','
        << tokens_per_rank << ',' << plan.layout << ',' << plan.block_q << ',' << plan.block_k << ',' << plan.model_name
        << ',' << plan.model.parameter_count() << ',' << threads << ',' << placement.ranks_on_node << ','
        << placement.cores_on_node << ',' << (placement.oversubscribed ? "yes" : "no") << ',' << plan.warmup << ','
        << plan.steps << ',' << m.tokens_per_step << ',' << fmt("%.6g", tokens_per_s) << ',' << fmt("%.6g", step_s)
        << ',' << fmt("%.6g", step_min) << ',' << fmt("%.6g", step_max) << ',' << fmt("%.6g", gflops) << ','
        << fmt("%.6g", peak_gflops) << ',' << fmt("%.5f", mfu) << ',' << hops_per_step << ','
        << fmt("%.6g", 1e3 * hop_compute) << ',' << fmt("%.6g", 1e3 * hop_wait) << ',' << fmt("%.6g", 1e3 * bare_hop_s)
        << ',' << fmt("%.5f", exposed) << ',' << fmt("%.0f", m.bytes_per_step) << ','
        << fmt("%.1f", m.messages_per_step) << ',' << fmt("%.1f", peak_rss_mib) << ',' << fmt("%.2f", load_at_start)
        << ',' << static_cast<long long>(std::time(nullptr)) << ',' << model::precision_name(plan.precision);
    try {
      bench::append_csv_row(plan.csv, kCsvHeader, row.str());
      std::printf("# appended one row to %s\n", plan.csv.c_str());
    } catch (const InputError& e) {
      status = e.what();
    }
  }
  std::fflush(stdout);
  return mpi::agree_on_error(status).empty() ? 0 : fail(status);
}

}  // namespace rw::cli
