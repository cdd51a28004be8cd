// run_driver.cpp
#include "src/train/run_driver.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "device/backend.h"
#include "device/cpu/sgemm_peak.h"
#include "io/attn_io.h"
#include "io/checkpoint.h"
#include "io/params_io.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "mpi/watchdog.h"
#include "src/common/activity.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/data_sources.h"
#include "src/train/stage_checks.h"
#include "src/train/trainer.h"

namespace rw::train {
namespace {

volatile std::sig_atomic_t g_stop_requested = 0;
void on_stop_signal(int) { g_stop_requested = 1; }

bool file_exists(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }
std::string final_name(const std::string& stage) { return "ckpt-" + stage + "-final.h5"; }
std::string step_name(const std::string& stage, int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08lld", static_cast<long long>(step));
  return "ckpt-" + stage + "-step" + buf + ".h5";
}

// Rank 0 writes `text` to dir/name atomically (temporary file, fsync, rename).
void write_small_file_atomically(const std::string& dir, const std::string& name, const std::string& text) {
  if (mpi::world_rank() != 0) return;
  const std::string path = join(dir, name), tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    RW_CHECK(out.good(), "cannot write '" + tmp + "'");
  }
  std::FILE* f = std::fopen(tmp.c_str(), "r");
  if (f) {
    fsync(fileno(f));
    std::fclose(f);
  }
  RW_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '" + tmp + "' to '" + path + "'");
}

std::string read_latest(const std::string& run_dir) {
  std::ifstream in(join(run_dir, "latest"));
  std::string name;
  if (!(in >> name)) return "";
  return name;
}

// Keeps the newest `keep` step checkpoints of a stage and removes the older ones (rank 0). Called
// only after a newer complete checkpoint exists, so a complete one always remains.
void prune(const std::string& run_dir, const std::string& stage, int keep) {
  if (mpi::world_rank() != 0 || keep < 0) return;
  const std::string prefix = "ckpt-" + stage + "-step";
  std::vector<std::string> names;
  if (DIR* dir = opendir(run_dir.c_str())) {
    while (dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name.rfind(prefix, 0) == 0 && name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0)
        names.push_back(name);
    }
    closedir(dir);
  }
  std::sort(names.begin(), names.end());  // zero-padded step numbers sort in step order
  for (std::size_t i = 0; i + keep < names.size(); ++i) std::remove(join(run_dir, names[i]).c_str());
}

std::string agree(const std::string& error) { return mpi::agree_on_error(error); }

int64_t batch_tokens_of(const StageSpec& stage, const RunPlan& plan) {
  return stage.global_batch_tokens > 0 ? stage.global_batch_tokens : static_cast<int64_t>(stage.seq_len) * plan.dp;
}

// Everything about a stage that can be wrong in the user's plan, checked before any work.
void validate_stage(const StageSpec& stage, const RunPlan& plan, Layout layout) {
  check_stage_numbers(stage);
  model::LlamaConfig config = plan.model;
  config.rope_theta = stage.rope_theta;
  try {
    config.validate();
  } catch (const InputError& e) {
    throw InputError("stage '" + stage.name + "': " + e.what());
  }
  check_ring_split(layout, stage.seq_len, plan.sp);
  const int64_t batch_tokens = batch_tokens_of(stage, plan);
  if (batch_tokens % stage.seq_len != 0 || (batch_tokens / stage.seq_len) % plan.dp != 0)
    throw InputError("stage '" + stage.name + "': global-batch-tokens " + std::to_string(batch_tokens) +
                     " must be a multiple of seq-len " + std::to_string(stage.seq_len) + " x dp " + std::to_string(plan.dp));
  try {
    data::check_data_spec(stage.data);
  } catch (const InputError& e) {
    throw InputError("stage '" + stage.name + "': " + e.what());
  }
  if (stage.steps < 1) throw InputError("stage '" + stage.name + "': steps must be at least 1");
  parse_schedule(stage.schedule);
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

std::string memory_preflight_error(const model::LlamaConfig& config, int grid_size) {
  const double at_rest = 16.0 * static_cast<double>(config.parameter_count()) / grid_size;
  const int local_ranks = mpi::ranks_on_this_node();
  const double available = static_cast<double>(available_memory_bytes()) / local_ranks;
  std::string error;
  if (available > 0 && at_rest > available)
    error = "the model's " + std::to_string(config.parameter_count()) + " parameters need " +
            std::to_string(static_cast<long long>(at_rest / 1048576)) + " MiB per rank at rest (16 bytes per parameter over " +
            std::to_string(grid_size) + " ranks) but node " + mpi::host_name() + " has " +
            std::to_string(static_cast<long long>(available / 1048576)) + " MiB available per rank (" +
            std::to_string(local_ranks) + " ranks on the node): use more ranks or a smaller model";
  return mpi::agree_on_error(error);
}

int run_training(RunPlan plan) {
  const bool is_root = mpi::world_rank() == 0;
  auto fail = [&](const std::string& message) {
    if (is_root) std::fprintf(stderr, "ringworld train: error: %s\n", message.c_str());
    return 1;
  };
  const Layout layout = parse_layout(plan.layout);
  try {
    for (const StageSpec& stage : plan.stages)
      if (plan.only_stage.empty() || stage.name == plan.only_stage) validate_stage(stage, plan, layout);
  } catch (const InputError& e) {
    return fail(e.what());
  }
  std::unique_ptr<mpi::ProcessGrid> grid;
  std::unique_ptr<device::Backend> backend;
  std::string error;
  try {
    // The ring's own wait timeout stays behind the watchdog's, as a fallback.
    grid = std::make_unique<mpi::ProcessGrid>(plan.dp, plan.sp, plan.timeout_s > 0 ? 2 * plan.timeout_s + 30 : 0);
    backend = device::make_backend(plan.device);
    if (!plan.run_dir.empty()) {
      if (is_root && mkdir(plan.run_dir.c_str(), 0755) != 0 && errno != EEXIST)
        error = "cannot create run directory '" + plan.run_dir + "': " + std::strerror(errno);
    }
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = agree(error)).empty()) return fail(error);
  // Refuse what cannot fit instead of being killed (agreed: nodes may differ).
  if (!(error = memory_preflight_error(plan.model, grid->size())).empty()) return fail(error);
  // From here on a hang anywhere (ring step, collective, checkpoint) ends the job with a report.
  mpi::Watchdog watchdog(plan.timeout_s);
  if (is_root) {
    std::printf("%s", grid->ring_order_report().c_str());
    if (plan.timeout_s > 0)
      std::printf("  watchdog: a rank without progress for %g s reports and ends the job (--timeout)\n", plan.timeout_s);
    std::fflush(stdout);
  }
  if (!plan.run_dir.empty()) write_small_file_atomically(plan.run_dir, "run.ini", to_ini(plan));
  if (plan.metrics.empty() && !plan.run_dir.empty()) plan.metrics = join(plan.run_dir, "metrics.jsonl");

  const int threads = std::max(1, std::atoi(std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "1"));
  const double peak_gflops = grid->allreduce_sum(device::cpu::measure_sgemm_gflops(1024, threads, 5));
  std::unique_ptr<std::ofstream> metrics;
  if (is_root && !plan.metrics.empty()) {
    metrics = std::make_unique<std::ofstream>(plan.metrics, std::ios::app);
    if (!*metrics) std::fprintf(stderr, "ringworld train: warning: cannot write metrics to '%s'\n", plan.metrics.c_str());
  }
  if (is_root) {
    std::printf("ringworld train: %d rank(s) as dp %d x sp %d, %s layout; sgemm peak %.1f GFLOP/s over all ranks\n",
                grid->size(), plan.dp, plan.sp, plan.layout.c_str(), peak_gflops);
    std::fflush(stdout);
  }

  // A resumed run starts at the stage and step of the run directory's latest checkpoint.
  std::string resume_path;
  io::CheckpointState resume_state;
  if (plan.resume) {
    try {
      const std::string latest = read_latest(plan.run_dir);
      if (latest.empty()) throw InputError("--resume: run directory '" + plan.run_dir + "' has no 'latest' checkpoint");
      resume_path = join(plan.run_dir, latest);
      model::LlamaConfig saved;
      resume_state = io::read_checkpoint_state(resume_path, &saved);
    } catch (const InputError& e) {
      error = e.what();
    }
    if (!(error = agree(error)).empty()) return fail(error);
  }

  int steps_this_invocation = 0;
  bool stop_requested = false;
  for (std::size_t index = 0; index < plan.stages.size(); ++index) {
    const StageSpec& stage = plan.stages[index];
    if (!plan.only_stage.empty() && stage.name != plan.only_stage) continue;
    const std::string final_path = plan.run_dir.empty() ? "" : join(plan.run_dir, final_name(stage.name));
    if (!final_path.empty() && file_exists(final_path)) {
      if (is_root) std::printf("== stage %s: already complete (%s); skipped\n", stage.name.c_str(), final_path.c_str());
      continue;
    }
    model::LlamaConfig config = plan.model;
    config.rope_theta = stage.rope_theta;
    const int64_t batch_tokens = batch_tokens_of(stage, plan);
    TrainerOptions options;
    options.adamw = plan.adamw;
    options.schedule.kind = parse_schedule(stage.schedule);
    options.schedule.peak_lr = stage.lr;
    options.schedule.min_lr = stage.min_lr;
    options.schedule.warmup_steps = stage.warmup_steps;
    options.schedule.total_steps = stage.steps;
    options.clip_grad_norm = plan.clip_grad_norm;
    options.tiling = {plan.block_q, plan.block_k};
    options.transformer.ffn_chunk_tokens = plan.ffn_chunk;
    data::SourceGeometry geometry;
    geometry.seed = plan.seed + 1000003ull * index;
    geometry.seq_len = stage.seq_len;
    geometry.global_sequences = static_cast<int>(batch_tokens / stage.seq_len);
    geometry.vocab_size = config.vocab_size;
    geometry.dp = grid->dp();
    geometry.dp_rank = grid->dp_rank();
    geometry.sp = grid->sp();
    geometry.sp_rank = grid->sp_rank();
    geometry.layout = layout;
    std::unique_ptr<data::DataSource> source_owner;
    try {
      source_owner = data::make_data_source(stage.data, geometry);
    } catch (const InputError& e) {
      error = "stage '" + stage.name + "': " + e.what();
    }
    if (!(error = agree(error)).empty()) return fail(error);
    data::DataSource& source = *source_owner;
    Trainer trainer(config, *grid, *backend, source, options);

    // Where the stage starts from.
    std::string start_note;
    try {
      activity::Doing loading("loading the stage's starting parameters (checkpoint or parameter file)");
      if (!resume_path.empty() && resume_state.stage == stage.name) {
        io::load_checkpoint(resume_path, trainer.params(), true);
        trainer.set_steps_done(static_cast<int>(resume_state.step));
        source.seek(resume_state.data_cursor);
        start_note = "resumed from " + resume_path + " at step " + std::to_string(resume_state.step);
        resume_path.clear();
      } else if (index > 0 && !plan.run_dir.empty()) {
        const std::string previous = join(plan.run_dir, final_name(plan.stages[index - 1].name));
        if (!file_exists(previous))
          throw InputError("stage '" + stage.name + "' starts from stage '" + plan.stages[index - 1].name +
                           "', whose final checkpoint " + previous + " does not exist: run that stage first");
        io::load_checkpoint(previous, trainer.params(), plan.carry_optimizer);
        start_note = "initialised from " + previous + (plan.carry_optimizer ? " (with optimizer state)" : "");
      } else if (!plan.init_params.empty()) {
        const model::LlamaConfig file_config = io::read_model_config(plan.init_params);
        if (!file_config.same_architecture(config))
          throw InputError("--init-params '" + plan.init_params + "' holds a model of " + file_config.describe() +
                           ", but the run configures " + config.describe());
        io::read_param_shards(plan.init_params, trainer.params());
        start_note = "initialised from " + plan.init_params;
      } else {
        trainer.params().initialize(plan.seed);
        start_note = "random initialisation (seed " + std::to_string(plan.seed) + ")";
      }
    } catch (const InputError& e) {
      error = e.what();
    }
    if (!(error = agree(error)).empty()) return fail(error);
    const double flops_per_step = 3 * forward_flops(config, geometry.global_sequences, stage.seq_len, true);
    if (is_root) {
      std::printf("== stage %s (%zu/%zu): seq_len %d, rope_theta %g, %lld tokens/step, %d steps, lr %g (%s, warm-up %d)\n",
                  stage.name.c_str(), index + 1, plan.stages.size(), stage.seq_len, stage.rope_theta,
                  static_cast<long long>(batch_tokens), stage.steps, stage.lr, stage.schedule.c_str(), stage.warmup_steps);
      std::printf("   model %s; %s\n", config.describe().c_str(), start_note.c_str());
      std::fflush(stdout);
    }

    auto save = [&](const std::string& name) {
      io::CheckpointState st;
      st.stage = stage.name;
      st.stage_index = static_cast<int64_t>(index);
      st.step = trainer.steps_done();
      st.tokens_seen = static_cast<int64_t>(trainer.steps_done()) * batch_tokens;
      st.seq_len = stage.seq_len;
      st.layout = plan.layout;
      st.data_cursor = source.cursor();
      st.seed = plan.seed;
      st.world_size = grid->size();
      st.dp = grid->dp();
      st.sp = grid->sp();
      const double t0 = wall_seconds();
      activity::Doing writing("writing checkpoint " + join(plan.run_dir, name));
      io::save_checkpoint(join(plan.run_dir, name), config, trainer.params(), st);
      write_small_file_atomically(plan.run_dir, "latest", name + "\n");
      if (is_root) {
        std::printf("   checkpoint %s (%.2f s)\n", join(plan.run_dir, name).c_str(), wall_seconds() - t0);
        std::fflush(stdout);
      }
    };

    for (int step = trainer.steps_done(); step < stage.steps; ++step) {
      activity::set_step(stage.name, step);
      const StepReport r = trainer.step();
      if (!std::isfinite(r.loss)) return fail("loss is " + std::to_string(r.loss) + " at step " + std::to_string(step + 1));
      const double tokens_per_s = r.tokens / r.seconds, gflops = flops_per_step / r.seconds / 1e9;
      const double mfu = gflops / peak_gflops;
      if (is_root && (step % plan.log_every == 0 || step + 1 == stage.steps)) {
        std::printf("step %5d/%d | loss %.4f | grad_norm %.3f | lr %.2e | %8.0f tok/s | %7.1f GFLOP/s | MFU %.2f | ring wait %.0f%%\n",
                    step + 1, stage.steps, r.loss, r.grad_norm, r.lr, tokens_per_s, gflops, mfu,
                    100.0 * r.ring_wait_s / std::max(1e-12, r.ring_compute_s + r.ring_wait_s));
        std::fflush(stdout);
      }
      if (metrics && *metrics) {
        char line[512];
        std::snprintf(line, sizeof line,
                      "{\"stage\":\"%s\",\"step\":%d,\"loss\":%.17g,\"grad_norm\":%.6g,\"lr\":%.6g,\"tokens\":%lld,"
                      "\"seconds\":%.6g,\"tokens_per_s\":%.6g,\"gflops\":%.6g,\"mfu\":%.4f,\"ring_compute_s\":%.6g,"
                      "\"ring_wait_s\":%.6g}\n",
                      stage.name.c_str(), step + 1, r.loss, r.grad_norm, r.lr, static_cast<long long>(r.tokens), r.seconds,
                      tokens_per_s, gflops, mfu, r.ring_compute_s, r.ring_wait_s);
        *metrics << line;
        metrics->flush();
      }
      const bool last = step + 1 == stage.steps;
      ++steps_this_invocation;
      const bool stop = grid->allreduce_sum(g_stop_requested ? 1.0 : 0.0) > 0 ||
                        (plan.stop_after_steps > 0 && steps_this_invocation >= plan.stop_after_steps);
      if (stop) stop_requested = true;
      if (last) break;  // the stage's final checkpoint follows; a stop takes effect after it
      if (plan.run_dir.empty()) {
        if (stop) {
          if (is_root) std::fprintf(stderr, "ringworld train: stopped at step %d (no --run-dir: nothing saved)\n", step + 1);
          return kRunStoppedBySignal;
        }
        continue;
      }
      if (stop || (plan.checkpoint_every > 0 && (step + 1) % plan.checkpoint_every == 0)) {
        save(step_name(stage.name, step + 1));
        prune(plan.run_dir, stage.name, std::max(1, plan.keep_last));
      }
      if (stop) {
        if (is_root)
          std::printf("ringworld train: stopped at step %d of stage %s; checkpoint saved, resume with --resume %s\n",
                      step + 1, stage.name.c_str(), plan.run_dir.c_str());
        return kRunStoppedBySignal;
      }
    }
    if (!plan.run_dir.empty()) {
      save(final_name(stage.name));
      prune(plan.run_dir, stage.name, 0);  // the final checkpoint supersedes them
    }
    if (!plan.save_params.empty() && index + 1 == plan.stages.size()) {
      try {
        io::write_sharded_tensors(plan.save_params, config, trainer.params(),
                                  {{"/params", io::TensorGroup::Source::weights}}, {{"step", double(trainer.steps_done())}});
      } catch (const InputError& e) {
        return fail(e.what());
      }
      if (is_root) std::printf("   wrote parameters to %s\n", plan.save_params.c_str());
    }
    const bool more_stages = index + 1 < plan.stages.size() && plan.only_stage.empty();
    if (stop_requested && more_stages) {
      if (is_root)
        std::printf("ringworld train: stopped after completing stage %s; resume with --resume %s\n", stage.name.c_str(),
                    plan.run_dir.empty() ? "DIR" : plan.run_dir.c_str());
      return kRunStoppedBySignal;
    }
  }
  const double peak_rss_mib = mpi::allreduce_max(static_cast<double>(peak_rss_bytes())) / 1048576.0;
  if (is_root) std::printf("  peak resident memory per rank (max over ranks): %.1f MiB\n", peak_rss_mib);
  return kRunComplete;
}

}  // namespace rw::train
