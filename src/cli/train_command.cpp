// train_command.cpp: `ringworld train`: trains the LLaMA model with ring attention on a dp x sp
// process grid, parameters and optimizer state sharded over all ranks. Options come from the
// command line and/or an INI file (--config; the command line wins). One log line per step
// from rank 0, and a JSON-lines metrics file.
#include <boost/program_options.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "device/backend.h"
#include "device/cpu/sgemm_peak.h"
#include "io/attn_io.h"
#include "io/params_io.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "src/attention/layout.h"
#include "src/cli/commands.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/synthetic_source.h"
#include "src/train/trainer.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

struct TrainSettings {
  std::string config_file, model = "tiny", layout = "zigzag", data = "synthetic", schedule = "cosine";
  std::string metrics, save_params, init_params, device = "cpu";
  int dp = 0, sp = 0, seq_len = 1024, steps = 100, warmup = 10, log_every = 1, block_q = 128, block_k = 128;
  int64_t global_batch_tokens = 0, ffn_chunk = 1024;
  double lr = 1e-3, min_lr = 1e-4, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, clip = 1.0;
  double timeout = 900;
  uint64_t seed = 1;
};

const char* kTrainHelp =
    "usage: mpirun -np N ringworld train [options]   (N = dp x sp; default sp = N, dp = 1)\n"
    "Options may also come from an INI file (--config run.ini) with the same names, e.g.\n"
    "  seq-len = 4096\n  hidden_size = 256\n"
    "The model starts from a preset (--model) and takes Hugging Face LlamaConfig names as overrides.\n";

}  // namespace

int run_train(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  TrainSettings s;
  po::options_description general("training"), model_opts("model (Hugging Face LlamaConfig names)");
  general.add_options()
      ("help,h", "show this help")
      ("config", po::value(&s.config_file), "INI file with any of these options")
      ("dp", po::value(&s.dp)->default_value(0), "data-parallel groups (0: world / sp)")
      ("sp", po::value(&s.sp)->default_value(0), "ranks per ring (0: world / dp)")
      ("seq-len", po::value(&s.seq_len)->default_value(s.seq_len), "tokens per sequence")
      ("global-batch-tokens", po::value(&s.global_batch_tokens)->default_value(0),
       "tokens per step over all ranks, a multiple of seq-len (0: one sequence per dp group)")
      ("steps", po::value(&s.steps)->default_value(s.steps), "optimizer steps")
      ("lr", po::value(&s.lr)->default_value(s.lr), "peak learning rate")
      ("min-lr", po::value(&s.min_lr)->default_value(s.min_lr), "final learning rate of the cosine schedule")
      ("warmup-steps", po::value(&s.warmup)->default_value(s.warmup), "linear warm-up steps")
      ("schedule", po::value(&s.schedule)->default_value(s.schedule), "constant | warmup | cosine")
      ("beta1", po::value(&s.beta1)->default_value(s.beta1), "AdamW beta1")
      ("beta2", po::value(&s.beta2)->default_value(s.beta2), "AdamW beta2")
      ("adam-eps", po::value(&s.eps)->default_value(s.eps), "AdamW epsilon")
      ("weight-decay", po::value(&s.weight_decay)->default_value(s.weight_decay), "AdamW weight decay (not on norms)")
      ("clip-grad-norm", po::value(&s.clip)->default_value(s.clip), "global gradient-norm clip (0: off)")
      ("layout", po::value(&s.layout)->default_value(s.layout), "contiguous | striped | zigzag")
      ("data", po::value(&s.data)->default_value(s.data), "synthetic (packed documents) | synthetic:flat")
      ("seed", po::value(&s.seed)->default_value(s.seed), "seed of initialisation and data")
      ("log-every", po::value(&s.log_every)->default_value(s.log_every), "steps between log lines")
      ("metrics", po::value(&s.metrics), "JSON-lines metrics file (one object per step)")
      ("init-params", po::value(&s.init_params), "start from the parameters of this HDF5 file")
      ("save-params", po::value(&s.save_params), "write the final parameters here (HDF5, atomic)")
      ("block-q", po::value(&s.block_q)->default_value(s.block_q), "attention query tile rows")
      ("block-k", po::value(&s.block_k)->default_value(s.block_k), "attention key tile rows")
      ("ffn-chunk", po::value(&s.ffn_chunk)->default_value(s.ffn_chunk), "tokens per blockwise FFN chunk")
      ("device", po::value(&s.device)->default_value(s.device), "cpu")
      ("timeout", po::value(&s.timeout)->default_value(s.timeout), "seconds a ring transfer may stall before abort");
  model_opts.add_options()
      ("model", po::value(&s.model)->default_value(s.model), "preset: tiny | small | 7b");
  for (const auto& f : model::config_fields()) {
    if (f.integer) model_opts.add_options()(f.name, po::value<int64_t>(), "override the preset");
    else model_opts.add_options()(f.name, po::value<double>(), "override the preset");
  }
  po::options_description all;
  all.add(general).add(model_opts);
  po::variables_map vm;
  model::LlamaConfig config;
  Layout layout = Layout::zigzag;
  train::TrainerOptions options;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).run(), vm);
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw InputError("cannot read config file '" + path + "'");
      try {
        po::store(po::parse_config_file(in, all), vm);
      } catch (const po::error& e) {
        throw InputError("config file '" + path + "': " + e.what());
      }
    }
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kTrainHelp << "\n" << all << "\n";
      return 0;
    }
    config = model::preset_config(s.model);
    for (const auto& f : model::config_fields()) {
      if (!vm.count(f.name)) continue;
      if (f.integer) config.*f.integer = vm[f.name].as<int64_t>();
      else config.*f.real = vm[f.name].as<double>();
    }
    config.validate();
    layout = parse_layout(s.layout);
    const int world = mpi::world_size();
    if (s.dp == 0 && s.sp == 0) s.dp = 1, s.sp = world;
    else if (s.dp == 0) s.dp = s.sp > 0 && world % s.sp == 0 ? world / s.sp : -1;
    else if (s.sp == 0) s.sp = s.dp > 0 && world % s.dp == 0 ? world / s.dp : -1;
    if (s.dp <= 0 || s.sp <= 0 || s.dp * s.sp != world)
      throw InputError("--dp x --sp must equal the number of ranks (" + std::to_string(world) + ")");
    check_ring_split(layout, s.seq_len, s.sp);
    if (s.global_batch_tokens == 0) s.global_batch_tokens = static_cast<int64_t>(s.seq_len) * s.dp;
    if (s.global_batch_tokens % s.seq_len != 0)
      throw InputError("--global-batch-tokens (" + std::to_string(s.global_batch_tokens) + ") must be a multiple of --seq-len (" +
                       std::to_string(s.seq_len) + ")");
    if ((s.global_batch_tokens / s.seq_len) % s.dp != 0)
      throw InputError("the global batch of " + std::to_string(s.global_batch_tokens / s.seq_len) +
                       " sequences must divide over dp = " + std::to_string(s.dp));
    if (s.steps < 1) throw InputError("--steps must be at least 1");
    if (s.data != "synthetic" && s.data != "synthetic:flat")
      throw InputError("--data '" + s.data + "' is not available yet (synthetic or synthetic:flat)");
    if (s.block_q < 1 || s.block_k < 1 || s.ffn_chunk < 1 || s.log_every < 1)
      throw InputError("--block-q, --block-k, --ffn-chunk and --log-every must be positive");
    options.schedule.kind = train::parse_schedule(s.schedule);
    options.schedule.peak_lr = s.lr;
    options.schedule.min_lr = s.min_lr;
    options.schedule.warmup_steps = s.warmup;
    options.schedule.total_steps = s.steps;
    options.adamw = {s.beta1, s.beta2, s.eps, s.weight_decay};
    options.clip_grad_norm = s.clip;
    options.tiling = {s.block_q, s.block_k};
    options.transformer.ffn_chunk_tokens = s.ffn_chunk;
    if (!s.save_params.empty()) io::check_output_path(s.save_params);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld train: error: %s\n", e.what());
    return 2;
  }

  // Collective set-up; errors here are the user's (a bad --init-params file, ...).
  std::unique_ptr<mpi::ProcessGrid> grid;
  std::unique_ptr<device::Backend> backend;
  std::string error;
  try {
    grid = std::make_unique<mpi::ProcessGrid>(s.dp, s.sp, s.timeout);
    backend = device::make_backend(s.device);
    if (!s.init_params.empty()) {
      const model::LlamaConfig file_config = io::read_model_config(s.init_params);
      if (file_config.describe() != config.describe())
        throw InputError("--init-params '" + s.init_params + "' holds a model of " + file_config.describe() +
                         ", but the run configures " + config.describe());
    }
  } catch (const InputError& e) {
    error = e.what();
  }
  error = mpi::agree_on_error(error);
  if (!error.empty()) {
    if (is_root) std::fprintf(stderr, "ringworld train: error: %s\n", error.c_str());
    return 1;
  }
  data::SyntheticOptions so;
  so.seed = s.seed;
  so.seq_len = s.seq_len;
  so.global_sequences = static_cast<int>(s.global_batch_tokens / s.seq_len);
  so.vocab_size = static_cast<int>(config.vocab_size);
  so.packed = s.data == "synthetic";
  data::SyntheticSource source(so, grid->dp(), grid->dp_rank(), grid->sp(), grid->sp_rank(), layout);
  train::Trainer trainer(config, *grid, *backend, source, options);
  if (s.init_params.empty()) {
    trainer.params().initialize(s.seed);
  } else {
    try {
      io::read_param_shards(s.init_params, trainer.params());
      error.clear();
    } catch (const InputError& e) {
      error = e.what();
    }
    error = mpi::agree_on_error(error);
    if (!error.empty()) {
      if (is_root) std::fprintf(stderr, "ringworld train: error: %s\n", error.c_str());
      return 1;
    }
  }

  const int threads = std::max(1, std::atoi(std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "1"));
  const double peak_gflops = grid->allreduce_sum(device::cpu::measure_sgemm_gflops(768, threads, 3));
  const double flops_per_step = 3 * train::forward_flops(config, so.global_sequences, s.seq_len, true);
  std::unique_ptr<std::ofstream> metrics;
  if (is_root) {
    std::printf("ringworld train: %d rank(s) as dp %d x sp %d, %s layout; model %s\n", grid->size(), s.dp, s.sp,
                layout_name(layout).c_str(), config.describe().c_str());
    std::printf("  seq_len %d, %d sequence(s) = %lld tokens per step, %d steps, lr %g (%s, warm-up %d), data %s\n",
                s.seq_len, so.global_sequences, static_cast<long long>(s.global_batch_tokens), s.steps, s.lr,
                s.schedule.c_str(), s.warmup, s.data.c_str());
    std::printf("  parameters and AdamW state at rest on rank 0: %.1f MiB (of %.1f MiB total); sgemm peak %.1f GFLOP/s over all ranks\n",
                trainer.params().bytes_at_rest() / 1048576.0, 16.0 * config.parameter_count() / 1048576.0, peak_gflops);
    if (!s.metrics.empty()) {
      metrics = std::make_unique<std::ofstream>(s.metrics, std::ios::app);
      if (!*metrics) std::fprintf(stderr, "ringworld train: warning: cannot write metrics to '%s'\n", s.metrics.c_str());
    }
    std::fflush(stdout);
  }
  for (int step = 0; step < s.steps; ++step) {
    const train::StepReport r = trainer.step();
    if (!std::isfinite(r.loss)) {
      if (is_root) std::fprintf(stderr, "ringworld train: error: loss is %f at step %d; stopping\n", r.loss, step);
      return 1;
    }
    const double tokens_per_s = r.tokens / r.seconds, gflops = flops_per_step / r.seconds / 1e9;
    const double mfu = gflops / peak_gflops;
    if (is_root && (step % s.log_every == 0 || step + 1 == s.steps)) {
      std::printf("step %5d/%d | loss %.4f | grad_norm %.3f | lr %.2e | %8.0f tok/s | %7.1f GFLOP/s | MFU %.2f | ring wait %.0f%%\n",
                  step + 1, s.steps, r.loss, r.grad_norm, r.lr, tokens_per_s, gflops, mfu,
                  100.0 * r.ring_wait_s / std::max(1e-12, r.ring_compute_s + r.ring_wait_s));
      std::fflush(stdout);
    }
    if (metrics && *metrics) {
      *metrics << "{\"step\":" << step + 1 << ",\"loss\":" << r.loss << ",\"grad_norm\":" << r.grad_norm
               << ",\"lr\":" << r.lr << ",\"tokens\":" << r.tokens << ",\"seconds\":" << r.seconds
               << ",\"tokens_per_s\":" << tokens_per_s << ",\"gflops\":" << gflops << ",\"mfu\":" << mfu
               << ",\"ring_compute_s\":" << r.ring_compute_s << ",\"ring_wait_s\":" << r.ring_wait_s << "}\n";
      metrics->flush();
    }
  }
  const double peak_rss_mib = mpi::allreduce_max(static_cast<double>(peak_rss_bytes())) / 1048576.0;
  if (is_root) std::printf("  peak resident memory per rank (max over ranks): %.1f MiB\n", peak_rss_mib);
  if (!s.save_params.empty()) {
    try {
      io::write_sharded_tensors(s.save_params, config, trainer.params(), {{"/params", io::TensorGroup::Source::weights}},
                                {{"step", double(trainer.steps_done())}});
    } catch (const InputError& e) {
      if (is_root) std::fprintf(stderr, "ringworld train: error: %s\n", e.what());
      return 1;
    }
    if (is_root) std::printf("  wrote parameters to %s\n", s.save_params.c_str());
  }
  return 0;
}

}  // namespace rw::cli
