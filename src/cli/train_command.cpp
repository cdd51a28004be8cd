// train_command.cpp: `ringworld train`: parses options (command line and/or INI file, the
// command line winning) into a RunPlan and runs it (src/train/run_driver.h). A run is one stage
// from the command line, or the [stage.NAME] sections of the config file in order.
#include <boost/program_options.hpp>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "io/attn_io.h"
#include "io/input_file.h"
#include "mpi/runtime.h"
#include "src/attention/layout.h"
#include "src/cli/commands.h"
#include "src/cli/config_file.h"
#include "src/cli/model_options.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/common/input_error.h"
#include "src/train/run_driver.h"
#include "src/train/trainer.h"
#include "src/train/run_reuse.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

const char* kTrainHelp =
    "usage: mpirun -np N ringworld train [options]        (N = dp x sp; default sp = N, dp = 1)\n"
    "       mpirun -np N ringworld train --config run.ini [--stage NAME] [--run-dir DIR]\n"
    "       mpirun -np N ringworld train --resume DIR      (continue from DIR/latest; DIR/run.ini)\n"
    "       mpirun -np N ringworld train --resume DIR --resume-from DIR/ckpt-main-step00000100.h5\n"
    "Under Slurm (SLURM_JOB_ID set) the run directory defaults to runs/slurm-<SLURM_JOB_ID>.\n"
    "\n"
    "Run directory: DIR/run.ini is the run's plan. --resume DIR follows it; only steps, checkpoint-every,\n"
    "keep-last, log-every, layout, block-q, block-k, ffn-chunk and the validation options may change\n"
    "(reported, and recorded in run.ini); any other difference, from --config or the command line, is\n"
    "refused naming it. A run started over a directory holding a run continues it only when the plan is\n"
    "the same (but for those, steps aside); otherwise it is refused (use --resume DIR, or a new --run-dir).\n"
    "Per invocation: --dp, --sp, --stage, --stop-after-steps, --timeout, --metrics, --device, --save-params,\n"
    "--resume-from.\n"
    "\n"
    "Options may come from an INI file with the same names (seq-len = 4096, hidden_size = 256).\n"
    "Stages of progressive context extension are sections of that file, run in order, each\n"
    "starting from the previous stage's final checkpoint:\n"
    "  [stage.32k]\n  seq-len = 32768\n  rope_theta = 1000000\n  global-batch-tokens = 65536\n"
    "  steps = 100\n  warmup-steps = 10\n  lr = 4e-5\n  schedule = constant\n  data = synthetic\n"
    "Exit status: 0 done, 1 bad input, 2 bad options, 75 stopped by SIGTERM/SIGUSR1 after a checkpoint.\n";

// Options that define a stage when no [stage.*] section does.
const char* kStageOptions[] = {"seq-len", "global-batch-tokens", "steps", "warmup-steps", "lr", "min-lr", "schedule", "data"};

// Under Slurm, one line on rank 0 with the job, its nodes and tasks per node (each when set), and
// the run directory when it is the Slurm default. Creates runs/ for that default.
void print_slurm_line(const std::string& run_dir, bool slurm_default_run_dir) {
  const char* job = std::getenv("SLURM_JOB_ID");
  if (job == nullptr) return;
  std::string line = std::string("ringworld train: Slurm job ") + job;
  const char* nodes = std::getenv("SLURM_JOB_NUM_NODES");
  const char* per_node = std::getenv("SLURM_NTASKS_PER_NODE");
  const char* restarts = std::getenv("SLURM_RESTART_COUNT");
  if (nodes) line += std::string(", ") + nodes + " node(s)";
  if (per_node) line += std::string(", ") + per_node + " task(s) per node";
  if (restarts && std::string(restarts) != "0") line += std::string(", restart ") + restarts;
  if (slurm_default_run_dir) {
    mkdir("runs", 0755);  // an error shows when the run directory cannot be created
    line += "; run directory " + run_dir + " (no --run-dir given)";
  }
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// Every option of train (the command line and INI keys), bound to plan, cli_stage and the two
// strings; visible: the ones --help shows.
void add_train_options(po::options_description& all, po::options_description& visible, train::RunPlan& plan,
                       train::StageSpec& cli_stage, std::string& config_file, std::string& resume_dir) {
  po::options_description general("run"), stage_opts("stage (without [stage.*] sections)"),
      model_opts("model (Hugging Face LlamaConfig names override the preset)");
  general.add_options()
      ("help,h", "show this help")
      ("config", po::value(&config_file), "INI file with any of these options and [stage.NAME] sections")
      ("resume", po::value(&resume_dir), "continue the run in this directory from its latest checkpoint")
      ("run-dir", po::value(&plan.run_dir), "directory for checkpoints, run.ini and metrics.jsonl")
      ("stage", po::value(&plan.only_stage), "run only this stage (one Slurm job per stage)")
      ("checkpoint-every", number(&plan.checkpoint_every)->min(0)->default_value(0), "steps between checkpoints (0: stage ends)")
      ("keep-last", number(&plan.keep_last)->min(0)->default_value(2), "step checkpoints kept per stage")
      ("stop-after-steps", number(&plan.stop_after_steps)->min(0)->default_value(0),
       "stop after this many steps with a checkpoint, as on SIGTERM (tests, time-boxed jobs)")
      ("carry-optimizer", number<int>(nullptr)->min(0)->max(1)->default_value(0), "1: a new stage keeps the AdamW moments")
      ("dp", number(&plan.dp)->min(0)->default_value(0), "data-parallel groups (0: world / sp)")
      ("sp", number(&plan.sp)->min(0)->default_value(0), "ranks per ring (0: world / dp)")
      ("layout", po::value(&plan.layout)->default_value(plan.layout), "contiguous | striped | zigzag")
      ("seed", number(&plan.seed)->default_value(plan.seed), "seed of initialisation and data")
      ("beta1", number(&plan.adamw.beta1)->min(0)->below(1)->default_value(plan.adamw.beta1), "AdamW beta1")
      ("beta2", number(&plan.adamw.beta2)->min(0)->below(1)->default_value(plan.adamw.beta2), "AdamW beta2")
      ("adam-eps", number(&plan.adamw.eps)->above(0)->default_value(plan.adamw.eps), "AdamW epsilon")
      ("weight-decay", number(&plan.adamw.weight_decay)->min(0)->default_value(plan.adamw.weight_decay),
       "AdamW weight decay (not on norms)")
      ("clip-grad-norm", number(&plan.clip_grad_norm)->min(0)->default_value(plan.clip_grad_norm), "global clip (0: off)")
      ("log-every", number(&plan.log_every)->min(1)->default_value(plan.log_every), "steps between log lines")
      ("micro-batch-tokens", count(&plan.micro_batch_tokens)->min(0)->default_value(0), "tokens of the global batch per micro-batch (gradient accumulation; a multiple of seq-len x dp dividing global-batch-tokens; K/M suffixes; 0: the whole batch at once)")
      ("on-nonfinite", po::value(&plan.on_nonfinite)->default_value(plan.on_nonfinite)->notifier([](const std::string& v) { train::parse_on_nonfinite(v); }), "a step whose loss or gradient norm is not finite: stop (no update, nothing saved) | skip (no update, counted, logged)")
      ("max-consecutive-skips", number(&plan.max_consecutive_skips)->min(1)->default_value(plan.max_consecutive_skips), "with --on-nonfinite skip: stop after this many skipped steps in a row")
      ("metrics", po::value(&plan.metrics), "JSON-lines metrics file (default: RUN_DIR/metrics.jsonl)")
      ("init-params", po::value(&plan.init_params), "start from the parameters of this HDF5 file")
      ("save-params", po::value(&plan.save_params), "write the final parameters here (HDF5, atomic)")
      ("block-q", count(&plan.block_q)->min(1)->default_value(plan.block_q), "attention query tile rows")
      ("block-k", count(&plan.block_k)->min(1)->default_value(plan.block_k), "attention key tile rows")
      ("ffn-chunk", count(&plan.ffn_chunk)->min(1)->default_value(plan.ffn_chunk), "tokens per blockwise FFN chunk")
      ("precision", po::value(&plan.precision)->default_value(plan.precision)->notifier([](const std::string& v) { model::parse_precision(v); }), "fp32 | bf16: bf16 weights copy, GEMM and attention inputs on the device; fp32 master weights, AdamW moments, gradients, residual stream, softmax statistics and loss; checkpoints fp32 either way")
      ("device", po::value(&plan.device)->default_value(plan.device), device_option_help().c_str())
      ("timeout", number(&plan.timeout_s)->min(0)->default_value(plan.timeout_s), "seconds a rank may go without progress (a ring step, a collective, a checkpoint) before the watchdog prints where every rank is and ends the job (0: off)");
  stage_opts.add_options()
      ("seq-len", count(&cli_stage.seq_len)->min(1)->default_value(cli_stage.seq_len), "tokens per sequence (K/M suffixes)")
      ("global-batch-tokens", count(&cli_stage.global_batch_tokens)->min(0)->default_value(0),
       "tokens per step, a multiple of seq-len x dp (0: one sequence per dp group)")
      ("steps", number(&cli_stage.steps)->min(1)->default_value(cli_stage.steps), "optimizer steps")
      ("warmup-steps", number(&cli_stage.warmup_steps)->min(0)->default_value(cli_stage.warmup_steps), "linear warm-up")
      ("lr", number(&cli_stage.lr)->min(0)->default_value(cli_stage.lr), "peak learning rate")
      ("min-lr", number(&cli_stage.min_lr)->min(0)->default_value(cli_stage.min_lr), "final lr of the cosine schedule")
      ("schedule", po::value(&cli_stage.schedule)->default_value(cli_stage.schedule), "constant | warmup | cosine")
      ("data", po::value(&cli_stage.data)->default_value(cli_stage.data), "synthetic | synthetic:flat | synthetic:passkey | file:DATA.h5 | file-concat:DATA.h5");
  model_opts.add_options()("model", po::value(&plan.model_preset)->default_value(plan.model_preset),
                           "preset: tiny | small | 7b");
  add_model_options(model_opts);
  // The run directory, resume and validation (see src/train/run_reuse.h, validation.h).
  po::options_description run_dir_opts("run directory, resume and validation");
  run_dir_opts.add_options()
      ("resume-from", po::value(&plan.resume_from),
       "start from this checkpoint (a run directory: its latest), not only RUN_DIR/latest")
      ("val-data", po::value(&plan.val_data), "held-out data for validation (a --data spec)")
      ("eval-every", number(&plan.eval_every)->min(0)->default_value(0), "steps between validations (0: at each stage's end)")
      ("val-sequences", number(&plan.val_sequences)->min(0)->default_value(0),
       "sequences per validation, a multiple of dp (0: one step's batch)")
      ("val-bucket-tokens", count(&plan.val_bucket_tokens)->min(0)->default_value(0),
       "width of the validation's position buckets (0: seq-len / 8, a power of 2)");
  po::options_description hidden;
  hidden.add_options()("run-id", po::value(&plan.run_id), "")  // run.ini's, never typed
      ("val-data-checksum", po::value(&plan.val_data_checksum), "");
  all.add(general).add(run_dir_opts).add(stage_opts).add(model_opts).add(hidden);
  visible.add(general).add(run_dir_opts).add(stage_opts).add(model_opts);

}

}  // namespace

std::vector<std::string> train_config_keys() {
  train::RunPlan plan;
  train::StageSpec stage;
  std::string config_file, resume_dir;
  po::options_description all, visible;
  add_train_options(all, visible, plan, stage, config_file, resume_dir);
  return option_names(all);
}

int run_train(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  train::RunPlan plan;  // the options below write here (build_plan resets it for each plan it builds)
  train::StageSpec cli_stage;
  std::string config_file, resume_dir;
  po::options_description all, visible;
  add_train_options(all, visible, plan, cli_stage, config_file, resume_dir);

  // The command line alone first: help, --resume, --config.
  po::parsed_options cli(&all);
  po::variables_map cli_vm;
  try {
    cli = parse_command_line(argc, argv, all);
    store_command_line(cli, cli_vm);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld train: error: %s\n", e.what());
    return 2;
  }
  if (cli_vm.count("help")) {
    if (is_root) std::cout << kTrainHelp << "\n" << visible << "\n";
    return 0;
  }
  std::set<std::string> on_command_line;
  for (const auto& o : cli.options) on_command_line.insert(o.string_key);
  const bool resume = cli_vm.count("resume") > 0;

  // A plan from an INI file (or none) and, with_command_line, the command line on top (it wins).
  // On resume, stage options on the command line set the stage they name (--stage) or the only
  // one, so that run_reuse can allow (steps) or refuse them by name.
  auto build_plan = [&](const std::string& file, bool with_command_line) {
    plan = train::RunPlan{};
    cli_stage = train::StageSpec{};
    po::variables_map vm;
    if (with_command_line) store_command_line(cli, vm);
    std::vector<train::StageSpec> stages;
    if (!file.empty()) {
      po::parsed_options parsed = parse_config_file(file, all);
      std::map<std::string, std::set<std::string>> stage_fields;
      for (const auto& o : parsed.options) {
        if (!o.unregistered) continue;
        const std::string& key = o.string_key;
        if (key.rfind("stage.", 0) != 0 || key.find('.', 6) == std::string::npos)
          throw unknown_key_error(file, key, all);
        const std::size_t dot = key.find('.', 6);
        const std::string name = key.substr(6, dot - 6), field = key.substr(dot + 1);
        auto it = std::find_if(stages.begin(), stages.end(), [&](const train::StageSpec& s) { return s.name == name; });
        if (it == stages.end()) {
          stages.push_back(train::StageSpec{});
          stages.back().name = name;
          it = stages.end() - 1;
        }
        if (o.value.empty()) throw InputError("config file '" + file + "': stage '" + name + "' key '" + field + "' has no value");
        train::set_stage_field(*it, field, o.value.front());
        stage_fields[name].insert(field);
      }
      for (const auto& s : stages)
        for (const std::string& key : train::required_stage_keys())
          if (!stage_fields[s.name].count(key))
            throw InputError("config file '" + file + "': stage '" + s.name + "' is missing '" + key + "'");
      // Remove the unregistered entries before storing the rest (command line wins: stored first).
      parsed.options.erase(std::remove_if(parsed.options.begin(), parsed.options.end(),
                                          [](const po::option& o) { return o.unregistered; }),
                           parsed.options.end());
      store_config_file(file, parsed, vm);
      if (!stages.empty() && with_command_line)
        for (const char* o : kStageOptions) {
          if (!on_command_line.count(o)) continue;
          if (!resume)
            throw InputError("--" + std::string(o) + " conflicts with the [stage.*] sections of '" + file +
                             "' (set it in the sections)");
          const std::string only = vm.count("stage") ? vm["stage"].as<std::string>() : "";
          if (only.empty() && stages.size() > 1)
            throw InputError("--" + std::string(o) + " on resume: the run has " + std::to_string(stages.size()) +
                             " stages; say which with --stage NAME");
          auto target = std::find_if(stages.begin(), stages.end(),
                                     [&](const train::StageSpec& s) { return only.empty() || s.name == only; });
          if (target == stages.end()) throw InputError("--stage '" + only + "' is not a stage of this run");
          for (const auto& opt : cli.options)
            if (opt.string_key == o && !opt.value.empty()) train::set_stage_field(*target, o, opt.value.back());
        }
    }
    po::notify(vm);
    plan.carry_optimizer = vm["carry-optimizer"].as<int>() != 0;
    plan.model = model::preset_config(plan.model_preset);
    apply_model_options(vm, plan.model);
    if (stages.empty()) {
      cli_stage.rope_theta = plan.model.rope_theta;
      stages.push_back(cli_stage);
    }
    // Data files as typed are checked before anything reads them (one line for a directory or a
    // missing file); then they become absolute paths, so run.ini works from any directory.
    if (with_command_line)
      for (const auto& s : stages)
        for (const char* prefix : {"file:", "file-concat:"})
          if (s.data.rfind(prefix, 0) == 0) io::check_input_file(s.data.substr(std::string(prefix).size()), "--data");
    for (auto& s : stages) s.data = train::absolute_data_spec(s.data);
    plan.val_data = train::absolute_data_spec(plan.val_data);
    plan.stages = stages;
    plan.model.validate();
    parse_layout(plan.layout);
    train::resolve_grid(mpi::world_size(), plan.dp, plan.sp);
    for (const auto& s : plan.stages) train::parse_schedule(s.schedule);
    if (!plan.only_stage.empty() &&
        std::none_of(plan.stages.begin(), plan.stages.end(), [&](const train::StageSpec& s) { return s.name == plan.only_stage; }))
      throw InputError("--stage '" + plan.only_stage + "' is not a stage of this run");
    if (plan.block_q < 1 || plan.block_k < 1 || plan.ffn_chunk < 1 || plan.log_every < 1)
      throw InputError("--block-q, --block-k, --ffn-chunk and --log-every must be positive");
    return plan;
  };

  train::RunPlan requested;
  std::optional<train::RunPlan> saved;
  bool slurm_run_dir = false;  // the run directory is Slurm's default, runs/slurm-<SLURM_JOB_ID>
  try {
    if (resume) {
      resume_dir = cli_vm["resume"].as<std::string>();
      if (cli_vm.count("run-dir") && cli_vm["run-dir"].as<std::string>() != resume_dir)
        throw InputError("--resume '" + resume_dir + "' and --run-dir '" + cli_vm["run-dir"].as<std::string>() +
                         "': a resumed run stays in its directory (give one of them)");
      if (!cli_vm.count("config") && !std::ifstream(resume_dir + "/run.ini").good())
        throw InputError("--resume '" + resume_dir + "': no readable run.ini there, so it is not a ringworld run directory");
      config_file = cli_vm.count("config") ? cli_vm["config"].as<std::string>() : resume_dir + "/run.ini";
    } else if (cli_vm.count("config")) {
      config_file = cli_vm["config"].as<std::string>();
    }
    requested = build_plan(config_file, true);
    if (resume) {
      requested.run_dir = resume_dir;
      requested.resume = true;
    }
    slurm_run_dir = requested.run_dir.empty() && std::getenv("SLURM_JOB_ID") != nullptr;
    if (slurm_run_dir) requested.run_dir = std::string("runs/slurm-") + std::getenv("SLURM_JOB_ID");
    if (!requested.save_params.empty()) io::check_output_path(requested.save_params);
    // The run already in the directory, as its run.ini says (nothing of this invocation).
    const std::string saved_ini = requested.run_dir.empty() ? "" : requested.run_dir + "/run.ini";
    if (!saved_ini.empty() && std::ifstream(saved_ini).good()) {
      try {
        saved = build_plan(saved_ini, false);
      } catch (const std::exception& e) {
        throw InputError("run directory '" + requested.run_dir + "' holds a run whose run.ini cannot be read (" +
                         e.what() + ")" + (resume ? "" : ": start this run in a new directory (--run-dir NEW)"));
      }
    }
    // A directory is a run directory whose `latest` is followed (run_driver); a file is checked here.
    if (!requested.init_params.empty() && !std::filesystem::is_directory(requested.init_params))
      io::check_input_file(requested.init_params, "--init-params");
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld train: error: %s\n", e.what());
    return 2;
  }
  if (is_root) print_slurm_line(requested.run_dir, slurm_run_dir);
  train::install_stop_signal_handlers();
  return train::run_training(requested, saved);
}

}  // namespace rw::cli
