// stage_loop.cpp
#include "src/train/stage_loop.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "io/params_io.h"
#include "mpi/runtime.h"
#include "src/common/activity.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/data_sources.h"
#include "src/data/global_batch.h"
#include "src/train/optimizer.h"
#include "src/train/progress.h"
#include "src/train/trainer.h"
#include "src/train/validation.h"

namespace rw::train {
namespace {

using Json = nlohmann::ordered_json;

// Rank 0 runs `action`; an InputError there becomes every rank's error (agreed, collective).
template <class Action>
std::string on_root_agreed(Action action) {
  std::string error;
  if (mpi::world_rank() == 0) {
    try {
      action();
    } catch (const InputError& e) {
      error = e.what();
    }
  }
  return mpi::agree_on_error(error);
}

void append_metrics(RunContext& ctx, const Json& record) {
  if (!ctx.metrics || !ctx.metrics->is_open()) return;
  try {
    ctx.metrics->append(record);
  } catch (const InputError& e) {
    if (!ctx.metrics_warned) std::fprintf(stderr, "ringworld train: warning: %s (training goes on)\n", e.what());
    ctx.metrics_warned = true;
  }
}

Json validation_record(const StageSpec& stage, int step, const ValidationResult& v) {
  Json r;
  r["type"] = "validation";
  r["stage_name"] = stage.name;  // not "stage": that key marks step records (scripts grep it)
  r["after_step"] = step;
  r["val_loss"] = v.loss;
  r["val_ppl"] = std::exp(v.loss);
  r["val_sequences"] = v.sequences;
  r["val_tokens"] = v.weight;
  if (!std::isnan(v.text_loss)) r["val_text_loss"] = v.text_loss;  // a vision model's kinds
  if (!std::isnan(v.vision_loss)) r["val_vision_loss"] = v.vision_loss;
  Json buckets = Json::array();
  for (const ValidationBucket& b : v.buckets)
    buckets.push_back(Json{{"from", b.from}, {"to", b.to}, {"loss", b.loss}, {"ppl", std::exp(b.loss)}, {"tokens", b.weight}});
  r["by_position"] = buckets;
  return r;
}

}  // namespace

int64_t batch_tokens_of(const StageSpec& stage, const RunPlan& plan) {
  return stage.global_batch_tokens > 0 ? stage.global_batch_tokens : static_cast<int64_t>(stage.seq_len) * plan.dp;
}

StageResult run_stage(RunContext& ctx, std::size_t index, std::string* error) {
  const RunPlan& plan = *ctx.plan;
  const StageSpec& stage = plan.stages[index];
  mpi::ProcessGrid& grid = *ctx.grid;
  const bool is_root = mpi::world_rank() == 0;
  auto failed = [&](const std::string& message) {
    *error = message;
    return StageResult::failed;
  };
  std::string err;

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
  options.transformer.precision = model::parse_precision(plan.precision);
  options.micro_batch_sequences = data::micro_batch_sequences(plan.micro_batch_tokens, batch_tokens, stage.seq_len, plan.dp);
  options.nonfinite = {parse_on_nonfinite(plan.on_nonfinite), plan.max_consecutive_skips};
  data::SourceGeometry geometry;
  geometry.seed = plan.seed + 1000003ull * index;
  geometry.seq_len = stage.seq_len;
  geometry.global_sequences = static_cast<int>(batch_tokens / stage.seq_len);
  geometry.vocab_size = config.vocab_size;
  geometry.vision_vocab_size = config.vision_vocab_size;
  geometry.dp = grid.dp();
  geometry.dp_rank = grid.dp_rank();
  geometry.sp = grid.sp();
  geometry.sp_rank = grid.sp_rank();
  geometry.layout = ctx.layout;
  std::unique_ptr<data::DataSource> source_owner;
  std::unique_ptr<Validator> validator;
  try {
    source_owner = data::make_data_source(stage.data, geometry);
    if (!plan.val_data.empty()) {
      // Held-out sequences: another seed for synthetic data; batches no larger than a step's.
      data::SourceGeometry val = geometry;
      val.seed = geometry.seed + 500009ull;
      const int wanted = plan.val_sequences > 0 ? plan.val_sequences : geometry.global_sequences;
      int per_batch = std::min(wanted, geometry.global_sequences);
      per_batch = (per_batch + grid.dp() - 1) / grid.dp() * grid.dp();
      val.global_sequences = per_batch;
      validator = std::make_unique<Validator>(plan.val_data, val, (wanted + per_batch - 1) / per_batch,
                                              plan.val_bucket_tokens);
    }
  } catch (const InputError& e) {
    err = "stage '" + stage.name + "': " + e.what();
  }
  if (!(err = mpi::agree_on_error(err)).empty()) return failed(err);
  data::DataSource& source = *source_owner;
  Trainer trainer(config, grid, *ctx.backend, source, options);

  // Where the stage starts from.
  std::string start_note;
  try {
    activity::Doing loading("loading the stage's starting parameters (checkpoint or parameter file)");
    if (!ctx.resume_path.empty() && ctx.resume_state.stage == stage.name) {
      io::load_checkpoint(ctx.resume_path, trainer.params(), true);
      trainer.set_steps_done(static_cast<int>(ctx.resume_state.step));
      trainer.set_optimizer_steps(ctx.resume_state.adam_step);
      source.seek(ctx.resume_state.data_cursor);
      start_note = "resumed from " + ctx.resume_path + " at step " + std::to_string(ctx.resume_state.step);
      ctx.resume_path.clear();
    } else if (index > 0 && ctx.run_dir) {
      const std::string previous = ctx.run_dir->file(io::checkpoint_final_name(plan.stages[index - 1].name));
      model::LlamaConfig previous_config;
      io::CheckpointState previous_state;
      try {
        previous_state = io::read_checkpoint_state(previous, &previous_config);
      } catch (const InputError& e) {
        throw InputError("stage '" + stage.name + "' starts from stage '" + plan.stages[index - 1].name +
                         "', whose final checkpoint " + previous + " does not exist or cannot be read (" + e.what() +
                         "): run that stage first");
      }
      io::load_checkpoint(previous, trainer.params(), plan.carry_optimizer);
      start_note = "initialised from " + previous;
      if (plan.carry_optimizer) {
        // The moments go on, and so does their step count: bias correction continues from it.
        trainer.set_optimizer_steps(previous_state.adam_step);
        start_note += " (with optimizer state: AdamW continues at step " + std::to_string(previous_state.adam_step + 1);
        if (!previous_state.adam_step_known) start_note += ", assumed from a format-1 checkpoint's step";
        start_note += ")";
      }
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
    err = e.what();
  }
  if (!(err = mpi::agree_on_error(err)).empty()) return failed(err);
  // The invocation's metrics header, once something will be trained (a refused or empty
  // invocation leaves the log as it was).
  if (is_root && !ctx.metrics_header.empty()) append_metrics(ctx, ctx.metrics_header);
  ctx.metrics_header = nlohmann::ordered_json();

  const double flops_per_step = 3 * forward_flops(config, geometry.global_sequences, stage.seq_len, true);
  std::vector<LaterStage> later;
  if (plan.only_stage.empty())
    for (std::size_t j = index + 1; j < plan.stages.size(); ++j) {
      model::LlamaConfig c = plan.model;
      c.rope_theta = plan.stages[j].rope_theta;
      const int64_t sequences = batch_tokens_of(plan.stages[j], plan) / plan.stages[j].seq_len;
      later.push_back({plan.stages[j].steps, 3 * forward_flops(c, sequences, plan.stages[j].seq_len, true)});
    }
  StageProgress progress(trainer.steps_done(), stage.steps, flops_per_step, later);
  if (is_root) {
    std::printf("== stage %s (%zu/%zu): seq_len %d, rope_theta %g, %lld tokens/step%s, %d steps, %s\n", stage.name.c_str(),
                index + 1, plan.stages.size(), stage.seq_len, stage.rope_theta, static_cast<long long>(batch_tokens),
                micro_batch_note(options, batch_tokens, grid.dp(), stage.seq_len).c_str(), stage.steps,
                describe_schedule(options.schedule).c_str());
    std::printf("   model %s; %s\n", config.describe().c_str(), start_note.c_str());
    if (validator)
      std::printf("   validation on %s: %lld sequence(s) %s, positions in buckets of %lld tokens\n", plan.val_data.c_str(),
                  static_cast<long long>(validator->sequences()),
                  plan.eval_every > 0 ? ("every " + std::to_string(plan.eval_every) + " steps and at the end").c_str()
                                      : "at the stage's end",
                  static_cast<long long>(validator->bucket_tokens()));
    std::fflush(stdout);
  }

  auto validate = [&](int step) {
    const ValidationResult v = validator->evaluate(trainer, grid);
    if (is_root) {
      std::printf("   step %d: %s\n", step, validation_line(v).c_str());
      std::fflush(stdout);
    }
    append_metrics(ctx, validation_record(stage, step, v));
    return v;
  };

  auto save = [&](const std::string& name) -> std::string {
    RW_CHECK(trainer.state_is_finite(), "refusing to save non-finite weights or AdamW moments");  // collective
    io::CheckpointState st;
    st.stage = stage.name;
    st.stage_index = static_cast<int64_t>(index);
    st.step = trainer.steps_done();
    st.tokens_seen = static_cast<int64_t>(trainer.steps_done()) * batch_tokens;
    st.global_batch_tokens = batch_tokens;
    st.seq_len = stage.seq_len;
    st.layout = plan.layout;
    st.data_cursor = source.cursor();
    st.seed = plan.seed;
    st.world_size = grid.size();
    st.dp = grid.dp();
    st.sp = grid.sp();
    st.adam_step = trainer.optimizer_steps();
    st.run_id = plan.run_id;
    const double t0 = wall_seconds();
    const std::string path = ctx.run_dir->file(name);
    activity::Doing writing("writing checkpoint " + path);
    try {
      io::save_checkpoint(path, config, trainer.params(), st);
    } catch (const InputError& e) {
      return e.what();  // agreed inside save_checkpoint
    }
    const std::string latest_error = on_root_agreed([&] { ctx.run_dir->set_latest(name); });
    if (!latest_error.empty()) return latest_error;
    if (is_root) {
      std::printf("   checkpoint %s (%.2f s)\n", path.c_str(), wall_seconds() - t0);
      std::fflush(stdout);
    }
    return "";
  };
  auto prune = [&](int keep, int64_t current_step) {
    if (!is_root) return;
    const std::string run_id = plan.run_id;
    ctx.run_dir->prune(stage.name, keep, current_step,
                       [&](const std::string& path) { return io::read_checkpoint_run_id(path) == run_id; });
  };

  const int first_step = trainer.steps_done();
  const double stage_start_s = wall_seconds();
  double first_loss = std::nan(""), last_loss = std::nan("");
  int64_t run_tokens_before = 0;  // tokens of the stages before this one (as planned)
  for (std::size_t j = 0; j < index; ++j)
    run_tokens_before += static_cast<int64_t>(plan.stages[j].steps) * batch_tokens_of(plan.stages[j], plan);
  bool stopped = false;
  for (int step = trainer.steps_done(); step < stage.steps; ++step) {
    activity::set_step(stage.name, step);
    const StepReport r = trainer.step();
    if (r.skipped && r.stop_reason.empty() && is_root)
      std::fprintf(stderr, "ringworld train: warning: %s\n", r.nonfinite_note.c_str());
    if (!r.stop_reason.empty()) return failed(r.stop_reason);  // before any checkpoint of this state
    progress.record_step(r.seconds);
    if (std::isnan(first_loss)) first_loss = r.loss;
    last_loss = r.loss;
    const int64_t tokens_seen = static_cast<int64_t>(step + 1) * batch_tokens;
    const double elapsed = wall_seconds() - ctx.run_start_s;
    const double tokens_per_s = r.tokens / r.seconds, gflops = flops_per_step / r.seconds / 1e9;
    const double mfu = gflops / ctx.peak_gflops;
    const bool last = step + 1 == stage.steps;
    if (is_root && (step % plan.log_every == 0 || last)) {
      std::string eta = "ETA stage " + format_duration(progress.stage_eta_seconds());
      if (progress.has_later_stages()) eta += ", run " + format_duration(progress.run_eta_seconds());
      std::printf("step %5d/%d | loss %.4f | grad_norm %.3f | lr %.2e | %8.0f tok/s | %7.1f GFLOP/s | MFU %.2f | ring wait "
                  "%.0f%% | %.3g s/step | %s tokens | elapsed %s | %s\n",
                  step + 1, stage.steps, r.loss, r.grad_norm, r.lr, tokens_per_s, gflops, mfu,
                  100.0 * r.ring_wait_s / std::max(1e-12, r.ring_compute_s + r.ring_wait_s), progress.seconds_per_step(),
                  format_count(double(tokens_seen)).c_str(), format_duration(elapsed).c_str(), eta.c_str());
      std::fflush(stdout);
    }
    if (is_root) {
      Json m;
      m["stage"] = stage.name;
      m["step"] = step + 1;
      m["loss"] = r.loss;
      m["grad_norm"] = r.grad_norm;
      m["lr"] = r.lr;
      m["tokens"] = r.tokens;
      m["tokens_seen"] = tokens_seen;
      m["run_tokens_seen"] = run_tokens_before + tokens_seen;
      m["seconds"] = r.seconds;
      m["tokens_per_s"] = tokens_per_s;
      m["gflops"] = gflops;
      m["mfu"] = mfu;
      m["ring_compute_s"] = r.ring_compute_s;
      m["ring_wait_s"] = r.ring_wait_s;
      m["elapsed_s"] = elapsed;
      m["s_per_step"] = progress.seconds_per_step();
      m["eta_stage_s"] = progress.stage_eta_seconds();
      if (progress.has_later_stages()) m["eta_run_s"] = progress.run_eta_seconds();
      append_metrics(ctx, m);
    }
    if (validator && plan.eval_every > 0 && (step + 1) % plan.eval_every == 0 && !last) validate(step + 1);
    ++ctx.steps_this_invocation;
    const bool stop = grid.allreduce_sum(*ctx.stop_flag ? 1.0 : 0.0) > 0 ||
                      (plan.stop_after_steps > 0 && ctx.steps_this_invocation >= plan.stop_after_steps);
    if (stop) ctx.stop_requested = true;
    if (last) break;  // the stage's final checkpoint follows; a stop takes effect after it
    if (!ctx.run_dir) {
      if (stop) {
        if (is_root) std::fprintf(stderr, "ringworld train: stopped at step %d (no --run-dir: nothing saved)\n", step + 1);
        return StageResult::stopped;
      }
      continue;
    }
    if (stop || (plan.checkpoint_every > 0 && (step + 1) % plan.checkpoint_every == 0)) {
      if (!(err = save(io::checkpoint_step_name(stage.name, step + 1))).empty()) return failed(err);
      prune(plan.keep_last, step + 1);
    }
    if (stop) {
      stopped = true;
      break;
    }
  }

  // The stage's end (or a stop inside it): validation, final checkpoint, summary.
  const int steps_run = trainer.steps_done() - first_step;
  const double stage_seconds = wall_seconds() - stage_start_s;
  ValidationResult val;
  const bool have_val = validator && !stopped;
  if (have_val) val = validate(trainer.steps_done());
  std::string final_path;
  if (!stopped && ctx.run_dir) {
    if (!(err = save(io::checkpoint_final_name(stage.name))).empty()) return failed(err);
    prune(0, stage.steps);  // the final checkpoint supersedes this run's step checkpoints
    final_path = ctx.run_dir->file(io::checkpoint_final_name(stage.name));
  }
  if (is_root) {
    char line[512];
    std::snprintf(line, sizeof line, "== stage %s %s: steps %d-%d (%d this run) in %s (%.3g s/step), %s tokens; loss %.4f -> %.4f",
                  stage.name.c_str(), stopped ? "stopped" : "done", first_step + (steps_run > 0 ? 1 : 0),
                  trainer.steps_done(), steps_run, format_duration(stage_seconds).c_str(),
                  steps_run > 0 ? stage_seconds / steps_run : 0.0,
                  format_count(double(trainer.steps_done()) * double(batch_tokens)).c_str(), first_loss, last_loss);
    std::string summary = line;
    if (steps_run == 0) {  // resumed at its last step: only the final checkpoint was missing
      std::snprintf(line, sizeof line, "== stage %s done: no steps left (at step %d of %d)", stage.name.c_str(),
                    trainer.steps_done(), stage.steps);
      summary = line;
    }
    if (have_val) {
      char v[96];
      std::snprintf(v, sizeof v, "; val loss %.4f (ppl %.4g)", val.loss, std::exp(val.loss));
      summary += v;
    }
    std::printf("%s\n", summary.c_str());
    std::fflush(stdout);
    Json m;
    m["type"] = stopped ? "stage_stopped" : "stage_end";
    m["stage_name"] = stage.name;
    m["steps_done"] = trainer.steps_done();
    m["steps_this_run"] = steps_run;
    m["seconds"] = stage_seconds;
    m["tokens_seen"] = static_cast<int64_t>(trainer.steps_done()) * batch_tokens;
    if (steps_run > 0) {
      m["first_loss"] = first_loss;
      m["last_loss"] = last_loss;
    }
    if (have_val) m["val_loss"] = val.loss;
    if (!final_path.empty()) m["checkpoint"] = final_path;
    append_metrics(ctx, m);
  }
  if (stopped) {
    if (is_root)
      std::printf("ringworld train: stopped at step %d of stage %s; checkpoint saved, resume with --resume %s\n",
                  trainer.steps_done(), stage.name.c_str(), ctx.run_dir->path().c_str());
    return StageResult::stopped;
  }
  if (!plan.save_params.empty() && index + 1 == plan.stages.size()) {
    RW_CHECK(trainer.state_is_finite(), "refusing to save non-finite weights");  // collective
    try {
      io::write_sharded_tensors(plan.save_params, config, trainer.params(), {{"/params", io::TensorGroup::Source::weights}},
                                {{"step", double(trainer.steps_done())}});
    } catch (const InputError& e) {
      return failed(e.what());
    }
    if (is_root) std::printf("   wrote parameters to %s\n", plan.save_params.c_str());
  }
  return StageResult::completed;
}

}  // namespace rw::train
