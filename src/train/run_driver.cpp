// run_driver.cpp
#include "src/train/run_driver.h"

#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "device/backend.h"
#include "io/checkpoint.h"
#include "io/metrics_log.h"
#include "io/run_directory.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "mpi/watchdog.h"
#include "src/common/build_info.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/data_sources.h"
#include "src/data/global_batch.h"
#include "src/train/run_reuse.h"
#include "src/train/stage_loop.h"
#include "src/train/stage_checks.h"
#include "src/train/trainer.h"

namespace rw::train {
namespace {

volatile std::sig_atomic_t g_stop_requested = 0;
void on_stop_signal(int) { g_stop_requested = 1; }

bool is_directory(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool is_file(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

// Rank 0's text on every rank (text must not be empty): agree_on_error hands every rank the
// lowest failing rank's string, and only rank 0 "fails" here.
std::string from_root(const std::string& text) { return mpi::agree_on_error(mpi::world_rank() == 0 ? text : ""); }

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
  data::micro_batch_sequences(plan.micro_batch_tokens, batch_tokens, stage.seq_len, plan.dp);  // throws if it does not divide
  try {
    data::check_data_spec(stage.data);
  } catch (const InputError& e) {
    throw InputError("stage '" + stage.name + "': " + e.what());
  }
  if (stage.steps < 1) throw InputError("stage '" + stage.name + "': steps must be at least 1");
  parse_schedule(stage.schedule);
}

// The run's settings that are not a stage's, checked before any work.
void validate_run_settings(const RunPlan& plan) {
  if (plan.keep_last < 1)
    throw InputError("--keep-last " + std::to_string(plan.keep_last) +
                     ": at least 1 step checkpoint per stage is kept (the one `latest` names is never removed); "
                     "to write none between stage ends use --checkpoint-every 0");
  if (plan.checkpoint_every < 0) throw InputError("--checkpoint-every must be 0 (stage ends only) or positive");
  if (plan.eval_every < 0 || plan.val_sequences < 0 || plan.val_bucket_tokens < 0)
    throw InputError("--eval-every, --val-sequences and --val-bucket-tokens must not be negative");
  if (!plan.val_data.empty()) {
    try {
      data::check_data_spec(plan.val_data);
    } catch (const InputError& e) {
      throw InputError(std::string("--val-data: ") + e.what());
    }
    if (plan.val_sequences > 0 && plan.val_sequences % plan.dp != 0)
      throw InputError("--val-sequences " + std::to_string(plan.val_sequences) + " must be a multiple of dp " +
                       std::to_string(plan.dp));
  } else if (plan.eval_every > 0) {
    throw InputError("--eval-every needs --val-data (the held-out data to evaluate)");
  }
  if (!plan.metrics.empty()) io::check_metrics_path(plan.metrics);
}

// The checkpoint an option names: a file, or a run directory's latest.
std::string resolve_checkpoint_path(const std::string& option, const std::string& path) {
  if (is_directory(path)) {
    const std::string latest = io::RunDirectory(path).read_latest();
    if (latest.empty())
      throw InputError(option + " '" + path + "' is a directory, expected a file (or a run directory with a 'latest' checkpoint)");
    return io::RunDirectory(path).file(latest);
  }
  if (!is_file(path)) throw InputError(option + " '" + path + "': no such file");
  return path;
}
std::string resolve_resume_from(const std::string& path) { return resolve_checkpoint_path("--resume-from", path); }

// Rank 0: the dataset checksum of every file: stage (and the validation data), compared with
// what the plan recorded and recorded where it has none.
std::vector<std::string> check_data_checksums(RunPlan& plan) {
  std::vector<std::string> notes;
  std::map<std::string, std::string> computed;
  for (StageSpec& s : plan.stages) {
    const std::string file = data_file_of(s.data);
    if (file.empty()) continue;
    if (!computed.count(file)) computed[file] = io::file_checksum_text(file);
    const std::string& now = computed[file];
    if (!s.data_checksum.empty() && s.data_checksum != now)
      throw InputError("stage '" + s.name + "': dataset " + file + " has changed since the run recorded it (" +
                       s.data_checksum + ", now " + now + "): use the original file, or start a new run");
    if (s.data_checksum.empty()) notes.push_back("stage '" + s.name + "' data " + file + ": " + now);
    s.data_checksum = now;
  }
  const std::string val_file = data_file_of(plan.val_data);
  if (!val_file.empty()) {
    if (!computed.count(val_file)) computed[val_file] = io::file_checksum_text(val_file);
    const std::string& now = computed[val_file];
    if (!plan.val_data_checksum.empty() && plan.val_data_checksum != now)
      throw InputError("validation dataset " + val_file + " has changed since the run recorded it (" +
                       plan.val_data_checksum + ", now " + now +
                       "): use the original file, or name another file with --val-data");
    if (plan.val_data_checksum.empty()) notes.push_back("validation data " + val_file + ": " + now);
    plan.val_data_checksum = now;
  } else {
    plan.val_data_checksum.clear();
  }
  return notes;
}

std::string run_ini_text(const RunPlan& plan, int world, const std::vector<std::string>& notes, const std::string& previous) {
  const std::string plan_text = to_ini(plan);
  const std::size_t first_line_end = plan_text.find('\n') + 1;  // to_ini's own header comment
  std::string text = plan_text.substr(0, first_line_end);
  text += "# ringworld " + std::string(build::version()) + ", git commit " + build::git_commit() + ", written " +
          io::iso_time_utc_now() + "\n";
  text += "# command: " + build::command_line() + "\n";
  text += "# world: " + std::to_string(world) + " rank(s) as dp " + std::to_string(plan.dp) + " x sp " +
          std::to_string(plan.sp) + "\n";
  // A plan changed on resume keeps the history of its changes.
  std::size_t at = 0;
  while ((at = previous.find("# changed on resume", at)) != std::string::npos) {
    const std::size_t end = previous.find('\n', at);
    text += previous.substr(at, end == std::string::npos ? std::string::npos : end - at + 1);
    at = end == std::string::npos ? previous.size() : end + 1;
  }
  for (const std::string& n : notes)
    if (n.rfind("changed on resume", 0) == 0) text += "# " + n + " (" + io::iso_time_utc_now() + ")\n";
  return text + plan_text.substr(first_line_end);
}

// The checkpoint this invocation starts from (--resume-from, or the run's latest when it goes
// on), read and compared with the stage it resumes: ctx.resume_path and resume_state are set,
// what may differ is added to notes. Throws InputError (nothing written yet).
void choose_start(const RunPlan& plan, bool continuing, const io::RunDirectoryContents& contents,
                  const io::RunDirectory* run_dir, RunContext& ctx, std::vector<std::string>& notes) {
  if (!plan.resume_from.empty()) {
    ctx.resume_path = resolve_resume_from(plan.resume_from);
  } else if (continuing) {
    if (!contents.latest.empty()) ctx.resume_path = run_dir->file(contents.latest);
    else if (plan.resume) throw InputError("--resume: run directory '" + plan.run_dir + "' has no 'latest' checkpoint");
  }
  if (ctx.resume_path.empty()) return;
  if (!is_file(ctx.resume_path))
    throw InputError("checkpoint '" + ctx.resume_path + "' (named by " +
                     (plan.resume_from.empty() ? run_dir->file("latest") : "--resume-from " + plan.resume_from) +
                     ") does not exist");
  model::LlamaConfig saved_config;
  ctx.resume_state = io::read_checkpoint_state(ctx.resume_path, &saved_config);
  const auto stage = std::find_if(plan.stages.begin(), plan.stages.end(),
                                  [&](const StageSpec& s) { return s.name == ctx.resume_state.stage; });
  if (stage == plan.stages.end()) {
    std::string names;
    for (const StageSpec& s : plan.stages) names += (names.empty() ? "" : ", ") + s.name;
    throw InputError("checkpoint '" + ctx.resume_path + "' is of stage '" + ctx.resume_state.stage +
                     "', which this run's plan does not have (stages: " + names + ")");
  }
  const CheckpointCheck check = compare_checkpoint_with_stage(ctx.resume_state, saved_config, plan, *stage,
                                                              batch_tokens_of(*stage, plan), plan.dp * plan.sp,
                                                              plan.dp, plan.sp);
  if (!check.refused.empty()) {
    std::string list;
    for (const auto& r : check.refused) list += (list.empty() ? "" : "; ") + r;
    throw InputError("checkpoint '" + ctx.resume_path + "' does not fit this run's stage '" + stage->name + "': " + list +
                     " (these cannot change on resume; start a new run to change them)");
  }
  for (const auto& r : check.reported) notes.push_back("resuming " + ctx.resume_path + ": " + r);
  // Rewinding a stage that has ended would mix two histories in one directory.
  const std::string final_path = run_dir ? run_dir->file(io::checkpoint_final_name(stage->name)) : "";
  if (!plan.resume_from.empty() && run_dir && ctx.resume_state.step < stage->steps && is_file(final_path) &&
      final_path != ctx.resume_path)
    throw InputError("--resume-from: stage '" + stage->name + "' of run directory '" + plan.run_dir + "' has ended (" +
                     io::checkpoint_final_name(stage->name) +
                     "); resuming an earlier checkpoint of it there would mix two histories: use a new --run-dir");
}

// Rank 0, before anything is written: the data files against the run's recorded checksums
// (recorded where missing; returns what was recorded), and a metrics file named on the command
// line that holds another run's records. Throws InputError.
std::vector<std::string> check_inputs_on_root(RunPlan& plan, bool continuing) {
  std::vector<std::string> notes = check_data_checksums(plan);
  struct stat info {};
  if (!plan.metrics.empty() && !continuing && stat(plan.metrics.c_str(), &info) == 0 && info.st_size > 0)
    throw InputError("--metrics '" + plan.metrics + "' already holds another run's records: name a new file (or remove it)");
  return notes;
}

// Rank 0: the run directory, its run.ini (a new run, or a plan changed on resume: the notes
// become its history) and the metrics log. Throws InputError.
void open_outputs_on_root(const RunPlan& plan, const RunDirectoryDecision& decision, const io::RunDirectory* run_dir,
                          int world, io::MetricsLog& metrics) {
  if (run_dir) {
    run_dir->create();
    if (decision.write_run_ini) {
      std::ifstream in(run_dir->file("run.ini"));
      std::stringstream previous;
      previous << in.rdbuf();
      run_dir->write_file_atomically("run.ini", run_ini_text(plan, world, decision.notes, previous.str()));
    }
  }
  if (!plan.metrics.empty()) metrics = io::MetricsLog(plan.metrics);
}

// The metrics log's header record of this invocation.
nlohmann::ordered_json metrics_header(const RunPlan& plan, int world, const io::RunDirectory* run_dir, bool continuing,
                                      const std::string& start, const std::vector<std::string>& notes) {
  nlohmann::ordered_json header;
  header["type"] = "header";
  header["ringworld_version"] = build::version();
  header["git_commit"] = build::git_commit();
  header["command_line"] = build::command_line();
  header["world_size"] = world;
  header["dp"] = plan.dp;
  header["sp"] = plan.sp;
  header["layout"] = plan.layout;
  header["run_id"] = plan.run_id;
  if (run_dir) header["run_dir"] = io::absolute_path(run_dir->path());
  header["start"] = start.empty() ? (continuing ? "continue" : "new") : start;
  header["notes"] = notes;
  return header;
}

// The stages in order from where the run stands: those complete (a final checkpoint) or behind
// the resumed checkpoint's stage are skipped. Returns an exit code.
int run_stages(RunContext& ctx, const std::function<int(const std::string&)>& fail) {
  const RunPlan& plan = *ctx.plan;
  const bool is_root = mpi::world_rank() == 0;
  std::size_t first_stage = 0;
  if (!ctx.resume_path.empty())
    for (std::size_t i = 0; i < plan.stages.size(); ++i)
      if (plan.stages[i].name == ctx.resume_state.stage) first_stage = i;
  for (std::size_t index = 0; index < plan.stages.size(); ++index) {
    const StageSpec& stage = plan.stages[index];
    if (!plan.only_stage.empty() && stage.name != plan.only_stage) continue;
    const std::string final_path = ctx.run_dir ? ctx.run_dir->file(io::checkpoint_final_name(stage.name)) : "";
    // A stage resumed mid-way runs even where an older final exists (refused when rewound).
    const bool resumes_inside =
        !ctx.resume_path.empty() && ctx.resume_state.stage == stage.name && ctx.resume_state.step < stage.steps;
    if (ctx.run_dir && !resumes_inside && is_file(final_path)) {
      if (is_root) std::printf("== stage %s: already complete (%s); skipped\n", stage.name.c_str(), final_path.c_str());
      if (!ctx.resume_path.empty() && ctx.resume_state.stage == stage.name) ctx.resume_path.clear();
      continue;
    }
    if (index < first_stage) {
      if (is_root)
        std::printf("== stage %s: skipped (the run resumes in stage %s)\n", stage.name.c_str(),
                    ctx.resume_state.stage.c_str());
      continue;
    }
    std::string stage_error;
    const StageResult result = run_stage(ctx, index, &stage_error);
    if (result == StageResult::failed) return fail(stage_error);
    if (result == StageResult::stopped) return kRunStoppedBySignal;
    const bool more_stages = index + 1 < plan.stages.size() && plan.only_stage.empty();
    if (ctx.stop_requested && more_stages) {
      if (is_root)
        std::printf("ringworld train: stopped after completing stage %s; resume with --resume %s\n", stage.name.c_str(),
                    ctx.run_dir ? ctx.run_dir->path().c_str() : "DIR");
      return kRunStoppedBySignal;
    }
  }
  return kRunComplete;
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

int run_training(RunPlan requested, const std::optional<RunPlan>& saved) {
  const bool is_root = mpi::world_rank() == 0;
  const std::function<int(const std::string&)> fail = [&](const std::string& message) {
    if (is_root) std::fprintf(stderr, "ringworld train: error: %s\n", message.c_str());
    return 1;
  };
  const double run_start_s = wall_seconds();
  std::string error;
  Layout layout = Layout::zigzag;
  try {
    layout = parse_layout(requested.layout);
    validate_run_settings(requested);
    if (!requested.init_params.empty() && is_directory(requested.init_params))
      requested.init_params = resolve_checkpoint_path("--init-params", requested.init_params);
    for (const StageSpec& stage : requested.stages)
      if (requested.only_stage.empty() || stage.name == requested.only_stage) validate_stage(stage, requested, layout);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);

  // The run directory: a new run, this run continued, or refused; then where it starts from.
  // Nothing is written before every check has passed on every rank.
  const std::unique_ptr<io::RunDirectory> run_dir =
      requested.run_dir.empty() ? nullptr : std::make_unique<io::RunDirectory>(requested.run_dir);
  const io::RunDirectoryContents contents = run_dir ? run_dir->inspect() : io::RunDirectoryContents{};
  RunDirectoryDecision decision = decide_run_directory(requested, saved, contents, from_root(new_run_id()));
  if (!(error = mpi::agree_on_error(decision.error)).empty()) return fail(error);
  RunPlan plan = decision.plan;
  const bool continuing = decision.action == RunDirectoryDecision::Action::resume;
  RunContext ctx;
  try {
    choose_start(plan, continuing, contents, run_dir.get(), ctx, decision.notes);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  std::vector<std::string> data_notes;
  if (is_root) {
    try {
      data_notes = check_inputs_on_root(plan, continuing);
    } catch (const InputError& e) {
      error = e.what();
    }
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);

  std::unique_ptr<mpi::ProcessGrid> grid;
  std::unique_ptr<device::Backend> backend;
  try {
    // The ring's own wait timeout stays behind the watchdog's, as a fallback.
    grid = std::make_unique<mpi::ProcessGrid>(plan.dp, plan.sp, plan.timeout_s > 0 ? 2 * plan.timeout_s + 30 : 0);
    backend = device::make_backend(plan.device);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  // Refuse what cannot fit instead of being killed (agreed: nodes may differ).
  if (!(error = memory_preflight_error(plan.model, grid->size())).empty()) return fail(error);

  // Only now is anything written: the run directory, its run.ini, the metrics log.
  io::MetricsLog metrics;
  if (plan.metrics.empty() && run_dir) plan.metrics = run_dir->file("metrics.jsonl");
  if (is_root) {
    try {
      open_outputs_on_root(plan, decision, run_dir.get(), grid->size(), metrics);
    } catch (const InputError& e) {
      error = e.what();
    }
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);

  // From here on a hang anywhere (ring step, collective, checkpoint) ends the job with a report.
  mpi::Watchdog watchdog(plan.timeout_s);
  if (is_root) {
    std::printf("%s", grid->ring_order_report().c_str());
    if (plan.timeout_s > 0)
      std::printf("  watchdog: a rank without progress for %g s reports and ends the job (--timeout)\n", plan.timeout_s);
    std::fflush(stdout);
  }
  // MFU's peak: the backend's GEMM rate with the resources its dense GEMMs run with (cpu: sgemm
  // on OpenBLAS's thread count, not OpenMP's).
  const double peak_gflops = grid->allreduce_sum(backend->measure_gemm_gflops());
  if (is_root) {
    // (fp32, the default, is not named: the line reads as it did before --precision existed)
    const std::string precision = plan.precision == "fp32" ? "" : ", precision " + plan.precision;
    std::printf("ringworld train: %d rank(s) as dp %d x sp %d, %s layout, device %s%s; sgemm peak %.1f GFLOP/s over all ranks\n",
                grid->size(), plan.dp, plan.sp, plan.layout.c_str(), backend->name().c_str(), precision.c_str(), peak_gflops);
    std::printf("  %s\n", backend->resources_line().c_str());
    const std::string warning = backend->configuration_warning();
    if (!warning.empty()) std::fprintf(stderr, "ringworld train: warning: %s\n", warning.c_str());
    std::printf("   %s; run %s%s%s\n", build::version_line().c_str(), plan.run_id.empty() ? "(no id)" : plan.run_id.c_str(),
                run_dir ? " in " : "", run_dir ? run_dir->path().c_str() : "");
    for (const std::string& n : decision.notes) std::printf("   %s\n", n.c_str());
    for (const std::string& n : data_notes) std::printf("   dataset checksum of %s\n", n.c_str());
    std::fflush(stdout);
    // Written when the first stage has loaded its start (run_stage).
    ctx.metrics_header = metrics_header(plan, grid->size(), run_dir.get(), continuing, ctx.resume_path, decision.notes);
  }

  ctx.plan = &plan;
  ctx.grid = grid.get();
  ctx.backend = backend.get();
  ctx.layout = layout;
  ctx.run_dir = run_dir.get();
  ctx.metrics = &metrics;
  ctx.stop_flag = &g_stop_requested;
  ctx.peak_gflops = peak_gflops;
  ctx.run_start_s = run_start_s;
  const int status = run_stages(ctx, fail);
  if (status != kRunComplete) return status;
  const double peak_rss_mib = mpi::allreduce_max(static_cast<double>(peak_rss_bytes())) / 1048576.0;
  if (is_root) std::printf("  peak resident memory per rank (max over ranks): %.1f MiB\n", peak_rss_mib);
  return kRunComplete;
}

}  // namespace rw::train
