// plan_command.cpp: `ringworld plan`: predicts, before anything runs, a training run's memory
// per rank, FLOPs, step time and ring overlap on a device from the table (src/plan/), and the
// smallest ring that fits. Runs as one process (no mpirun needed); under mpirun only rank 0
// measures and prints. The model comes from a preset, a config file as `train --config` reads
// it, and Hugging Face LlamaConfig overrides, the command line winning. With --inference it
// predicts generation on the ring instead (src/plan/inference_report.h): one rank's memory with
// its KV cache shard, the prefill's time and each decoded token's time and traffic.
#include <boost/program_options.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <sys/stat.h>

#include "device/backend.h"
#include "io/lwm_jax_import.h"
#include "mpi/runtime.h"
#include "src/cli/commands.h"
#include "src/cli/config_file.h"
#include "src/cli/model_options.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/global_batch.h"
#include "src/plan/device_table.h"
#include "src/plan/inference_report.h"
#include "src/plan/plan_report.h"
#include "src/plan/token_count.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

const char* kPlanHelp =
    "usage: ringworld plan --model 7b|lwm-7b|tiny|small|CONFIG.ini --seq-len 1M --ranks N [--dp D --sp S]\n"
    "                      [--device a100-40gb|a100-80gb|h100|h200|mi250x|mi300x|cpu|custom] [--precision fp32|tf32|bf16]\n"
    "                      [--device-tflops X] [--device-mem-gib X] [--link-gbps X] [--inter-node-gbps X]\n"
    "                      [--ranks-per-node N | --gpus-per-node N] [--headroom F] [--efficiency E] [--json]\n"
    "                      [--global-batch-tokens T] [--block-q --block-k --ffn-chunk --layout --threads]\n"
    "\n"
    "Predicts, before anything runs, one rank's memory (parameters and AdamW state, activations,\n"
    "transients) against the memory left after a headroom (default 10%), the FLOPs and time of a\n"
    "step, whether ring communication hides under compute (a ring longer than a node crosses\n"
    "nodes and moves at the inter-node rate), the largest MPI messages and HDF5 calls and how they\n"
    "are split, and the smallest ring that fits. Counts take K/M/G suffixes (32K = 32768, 1M = 1048576).\n"
    "A CONFIG.ini is read as `train --config` reads it; with [stage.*] sections the stage with the\n"
    "longest sequence is planned unless --stage names one (its seq-len and global-batch-tokens;\n"
    "a --seq-len given here plans one sequence per dp group unless --global-batch-tokens is given).\n"
    "--device-tflops, --device-mem-gib, --link-gbps and --inter-node-gbps override the figures of\n"
    "the --device named (they need one); --device custom takes its figures from them.\n"
    "\n"
    "       ringworld plan --inference --model lwm-7b --context 1M --ranks N [--max-new-tokens K] [--device h100]\n"
    "                      [--precision bf16|fp32|tf32] [--memory-bandwidth-gbs X] [--link-latency-us X]\n"
    "                      [--inter-node-latency-us X] [--layout L] [the device, node, headroom and --json options above]\n"
    "\n"
    "Predicts generation on the ring: every rank holds the whole model and the KV cache of its\n"
    "share of the tokens; one rank's memory (weights, KV cache shard, the prefill's working set)\n"
    "against the memory left after the headroom, the smallest ring of the device that holds it,\n"
    "the prefill's time (the training ring forward of the prompt) and per new token the decode\n"
    "time (weights and KV shard read at memory bandwidth, one small all-gather per layer), tokens/s\n"
    "and bytes moved. --precision is the weights' and KV cache's storage (default bf16 here).\n"
    "Exit status: 0 fits, 1 does not fit, 2 bad options.\n";

bool file_exists(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

struct StageText {
  std::string seq_len, batch_tokens;
};

bool is_preset(const std::string& name) {
  return name == "tiny" || name == "small" || name == "7b" || name == "lwm-7b";
}

// The common presets, and lwm-7b (LWM-Text-1M: LLaMA-2 7B with rope_theta 5e7 and
// rms_norm_eps 1e-6) as `import --from lwm-jax --config lwm-7b` defines it.
model::LlamaConfig plan_preset(const std::string& name) {
  if (name != "lwm-7b") return model::preset_config(name);
  const io::LwmModelSpec spec = io::lwm_model_preset(name);
  model::LlamaConfig c;
  c.vocab_size = spec.vocab_size.value();
  c.hidden_size = spec.hidden_size.value();
  c.intermediate_size = spec.intermediate_size.value();
  c.num_hidden_layers = spec.num_hidden_layers.value();
  c.num_attention_heads = spec.num_attention_heads.value();
  c.num_key_value_heads = spec.num_key_value_heads.value();
  c.rms_norm_eps = spec.rms_norm_eps.value();
  c.rope_theta = spec.rope_theta.value();
  return c;
}

// The options that name a device and override its figures.
struct DeviceOptions {
  std::string device_name = "cpu";
  double device_tflops = 0, device_mem_gib = 0, link_gbps = 0, inter_node_gbps = 0, memory_gbs = 0,
         link_latency_us = -1, inter_node_latency_us = -1, reserve_mib = -1;  // < 0: not given
  int ranks_per_node = 0, gpus_per_node = 0, threads = 1;
};

// The device's figures after the overrides, as a plan uses them.
struct DeviceFigures {
  plan::DeviceSpec device;
  double peak_flops_per_s = 0;
  std::string peak_basis;
  double capacity_bytes = 0;
  std::string capacity_basis;
  double link_bytes_per_s = 0, inter_node_bytes_per_s = 0;
  std::string inter_node_basis;
  int ranks_per_node = 0;  // 0: one node
  double reserve_bytes = 0;
  double memory_bytes_per_s = 0;
  std::string memory_bandwidth_basis;
  double link_latency_s = 0, inter_node_latency_s = 0;
  std::string latency_basis;
};

// Checks the device options (throws InputError naming the problem); returns the device named.
// `inference`: the options only the inference plan uses are allowed and --device custom needs
// a memory bandwidth too.
plan::DeviceSpec check_device_options(const po::variables_map& vm, DeviceOptions& o, int ranks, bool inference) {
  // An override needs the device it overrides: without --device the CPU of this machine would
  // silently supply every other figure.
  for (const char* override_name : {"device-tflops", "device-mem-gib", "link-gbps", "inter-node-gbps",
                                    "memory-bandwidth-gbs", "link-latency-us", "inter-node-latency-us"})
    if (vm.count(override_name) && !vm.count("device"))
      throw InputError(std::string("--") + override_name +
                       " needs --device: name the device whose figures it overrides (--device h100, --device cpu, "
                       "...), or --device custom with --device-tflops, --device-mem-gib and --link-gbps");
  const plan::DeviceSpec device = plan::find_device(o.device_name);
  const bool is_custom = plan::is_custom(device);
  if (is_custom && !(vm.count("device-tflops") && vm.count("device-mem-gib") && vm.count("link-gbps")))
    throw InputError(std::string("--device custom needs --device-tflops, --device-mem-gib and --link-gbps") +
                     (inference ? " (and, with --inference, --memory-bandwidth-gbs)" : ""));
  if (is_custom && inference && !vm.count("memory-bandwidth-gbs"))
    throw InputError("--device custom with --inference needs --memory-bandwidth-gbs (decoding is memory-bound)");
  if (vm.count("gpus-per-node")) {
    if (device.name == "cpu") throw InputError("--gpus-per-node is for GPU devices; the cpu device takes --ranks-per-node");
    if (o.gpus_per_node < 1) throw InputError("--gpus-per-node must be at least 1");
    if (vm.count("ranks-per-node") && o.ranks_per_node != o.gpus_per_node)
      throw InputError("--gpus-per-node and --ranks-per-node differ (one rank per GPU: give one of them)");
    o.ranks_per_node = o.gpus_per_node;
  }
  if (vm.count("inter-node-gbps") && !(o.inter_node_gbps > 0)) throw InputError("--inter-node-gbps must be positive");
  if (vm.count("device-tflops") && !(o.device_tflops > 0)) throw InputError("--device-tflops must be positive");
  if (vm.count("device-mem-gib") && !(o.device_mem_gib > 0)) throw InputError("--device-mem-gib must be positive");
  if (vm.count("link-gbps") && !(o.link_gbps > 0)) throw InputError("--link-gbps must be positive");
  if (vm.count("reserve-mib") && !(o.reserve_mib >= 0)) throw InputError("--reserve-mib must not be negative");
  if (vm.count("ranks-per-node") && o.ranks_per_node < 1) throw InputError("--ranks-per-node must be at least 1");
  if (is_custom && o.ranks_per_node > 0 && o.ranks_per_node < ranks && !vm.count("inter-node-gbps"))
    throw InputError("--device custom on more than one node (" + std::to_string(ranks) + " ranks, " +
                     std::to_string(o.ranks_per_node) + " per node) needs --inter-node-gbps");
  return device;
}

// The figures a plan uses: the table's, overridden; the CPU's peak measured now (sgemm) and
// its memory read from /proc/meminfo. Rank 0 only (it measures).
DeviceFigures device_figures(const DeviceOptions& o, const plan::DeviceSpec& device, plan::Precision precision, int ranks) {
  DeviceFigures f;
  f.device = device;
  const bool is_cpu = device.name == "cpu";
  if (o.device_tflops > 0) {
    f.peak_flops_per_s = o.device_tflops * 1e12;
    f.peak_basis = "--device-tflops";
  } else if (is_cpu) {
    const double gflops = device::create_backend("cpu")->measure_gemm_gflops(1024, 5, o.threads);
    f.peak_flops_per_s = gflops * 1e9;
    f.peak_basis = "sgemm measured now, " + std::to_string(o.threads) + " thread(s)";
  } else {
    f.peak_flops_per_s = device.peak_tflops(precision) * 1e12;
    f.peak_basis = "datasheet peak, dense";
  }
  if (o.device_mem_gib > 0) {
    f.capacity_bytes = o.device_mem_gib * 1024.0 * 1024.0 * 1024.0;
    f.capacity_basis = "--device-mem-gib";
  } else if (is_cpu) {
    const int sharing = o.ranks_per_node > 0 ? std::min(o.ranks_per_node, ranks) : ranks;
    f.capacity_bytes = static_cast<double>(available_memory_bytes()) / sharing;
    f.capacity_basis = "MemAvailable / " + std::to_string(sharing) + " rank(s) on this node";
  } else {
    f.capacity_bytes = device.memory_gib * 1024.0 * 1024.0 * 1024.0;
    f.capacity_basis = "datasheet";
  }
  f.link_bytes_per_s = (o.link_gbps > 0 ? o.link_gbps / 8.0 : device.link_gb_per_s) * 1e9;
  f.ranks_per_node = o.ranks_per_node > 0 ? o.ranks_per_node : device.ranks_per_node;  // 0: one node
  if (o.inter_node_gbps > 0) {
    f.inter_node_bytes_per_s = o.inter_node_gbps / 8.0 * 1e9;
    f.inter_node_basis = "--inter-node-gbps";
  } else {
    f.inter_node_bytes_per_s = device.inter_node_gb_per_s * 1e9;
    f.inter_node_basis = device.inter_node_basis;
  }
  f.reserve_bytes = (o.reserve_mib >= 0 ? o.reserve_mib : device.reserve_mib) * 1024.0 * 1024.0;
  f.memory_bytes_per_s = (o.memory_gbs > 0 ? o.memory_gbs : device.memory_gb_per_s) * 1e9;
  f.memory_bandwidth_basis = o.memory_gbs > 0 ? "--memory-bandwidth-gbs"
                             : is_cpu         ? "one core's triad, measured: docs/toolchain.md"
                                              : "datasheet";
  f.link_latency_s = (o.link_latency_us >= 0 ? o.link_latency_us : device.link_latency_us) * 1e-6;
  f.inter_node_latency_s = (o.inter_node_latency_us >= 0 ? o.inter_node_latency_us : device.inter_node_latency_us) * 1e-6;
  f.latency_basis = o.link_latency_us >= 0 && o.inter_node_latency_us >= 0 ? "--link-latency-us, --inter-node-latency-us"
                    : o.link_latency_us >= 0 || o.inter_node_latency_us >= 0
                        ? "one given on the command line; the other " + device.latency_basis
                        : device.latency_basis;
  return f;
}

int env_threads() {
  const char* text = std::getenv("OMP_NUM_THREADS");
  const int n = text ? std::atoi(text) : 1;
  return n > 0 ? n : 1;
}

}  // namespace

int run_plan(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string model_arg = "tiny", config_file, stage_name, seq_text, batch_text = "0", precision_text = "fp32",
              layout_text = "zigzag", micro_text;
  int ranks = 0, dp = 0, sp = 0;
  DeviceOptions dev;
  dev.threads = env_threads();
  double efficiency = 1.0, headroom = plan::PlanRequest::kDefaultHeadroom;
  int64_t context_tokens = 0, new_tokens = 0;
  plan::PlanRequest request;
  plan::TrainShape& shape = request.shape;
  bool json = false, inference = false;

  po::options_description opts("plan options"), model_opts("model (Hugging Face LlamaConfig names override the preset)");
  opts.add_options()
      ("help,h", "show this help")
      ("config", po::value(&config_file), "config file as train --config reads it (also: --model FILE)")
      ("stage", po::value(&stage_name), "plan this [stage.NAME] of the config file")
      ("seq-len", po::value(&seq_text), "tokens per sequence (K/M suffixes)")
      ("global-batch-tokens", po::value(&batch_text), "tokens per step, a multiple of seq-len x dp (0: one sequence per dp group)")
      ("micro-batch-tokens", po::value(&micro_text), "tokens of the global batch per micro-batch, as train takes it (default: the whole batch if it fits, else the largest micro-batch that fits)")
      ("ranks", po::value(&ranks), "MPI ranks (dp x sp)")
      ("dp", po::value(&dp), "data-parallel groups (default 1, or ranks / sp)")
      ("sp", po::value(&sp), "ranks per ring (default ranks / dp)")
      ("layout", po::value(&layout_text), "contiguous | striped | zigzag (default zigzag)")
      ("block-q", count(&shape.block_q)->min(1)->default_value(shape.block_q), "attention query tile rows")
      ("block-k", count(&shape.block_k)->min(1)->default_value(shape.block_k), "attention key tile rows")
      ("ffn-chunk", count(&shape.ffn_chunk_tokens)->min(1)->default_value(shape.ffn_chunk_tokens), "tokens per FFN chunk")
      ("threads", number(&dev.threads)->min(1), "OpenMP threads per rank (default OMP_NUM_THREADS or 1)")
      ("device", po::value(&dev.device_name), ("one of: " + plan::device_names() + " (default cpu)").c_str())
      ("precision", po::value(&precision_text), "fp32 (what ringworld computes) | tf32 | bf16: the peak FLOP/s used "
       "(--inference: also the weights' and KV cache's bytes; default bf16 there)")
      ("device-tflops", po::value(&dev.device_tflops), "peak TFLOP/s per rank (overrides the --device's table entry or measurement)")
      ("device-mem-gib", po::value(&dev.device_mem_gib), "memory per rank, GiB (overrides the --device's)")
      ("link-gbps", po::value(&dev.link_gbps), "link between ranks of a node, Gbit/s each way (overrides the --device's; 8 Gbit = 1 GB)")
      ("inter-node-gbps", po::value(&dev.inter_node_gbps), "link from a rank to another node, Gbit/s each way (overrides the --device's)")
      ("inference", "plan generation on the ring (prefill and decoding) instead of training")
      ("context", count(&context_tokens)->min(1), "--inference: the prompt's tokens, prefilled on the ring (K/M suffixes)")
      ("max-new-tokens", count(&new_tokens)->min(0), "--inference: tokens decoded after the prompt (default 0)")
      ("memory-bandwidth-gbs", number(&dev.memory_gbs)->above(0), "--inference: memory bandwidth per rank, GB/s (overrides the --device's)")
      ("link-latency-us", number(&dev.link_latency_us)->min(0), "--inference: one small message within a node, us (overrides the --device's)")
      ("inter-node-latency-us", number(&dev.inter_node_latency_us)->min(0), "--inference: one small message between nodes, us (overrides the --device's)")
      ("ranks-per-node", po::value(&dev.ranks_per_node),
       "ranks on one node: rings longer than this cross nodes; cpu: ranks sharing the node's memory "
       "(default: the table's node, 8 GPUs; cpu and custom: all ranks on one node)")
      ("gpus-per-node", po::value(&dev.gpus_per_node), "GPUs (one rank each) on one node: --ranks-per-node for GPU devices")
      ("headroom", po::value(&headroom), "share of the memory kept free: fits means peak <= (1 - headroom) x memory (default 0.1)")
      ("efficiency", po::value(&efficiency), "share of the peak the kernels reach (default 1: a lower bound on time)")
      ("reserve-mib", po::value(&dev.reserve_mib), "memory per rank before ringworld allocates (default from the table)")
      ("json", "print the plan as one JSON object instead of text")
      ("phases", "also list the memory of every phase of the step");
  model_opts.add_options()("model", po::value(&model_arg), "preset tiny | small | 7b | lwm-7b, or a config file");
  add_model_options(model_opts);
  po::options_description all;
  all.add(opts).add(model_opts);

  try {
    po::variables_map vm;
    po::parsed_options cli = parse_command_line(argc, argv, all);
    std::set<std::string> on_command_line;
    for (const auto& o : cli.options) on_command_line.insert(o.string_key);
    // --model FILE is --config FILE: the file's own `model = ` then names the preset, so the
    // option is taken out before storing (a stored option cannot be replaced by the file's).
    for (auto it = cli.options.begin(); it != cli.options.end(); ++it) {
      if (it->string_key != "model" || it->value.empty() || is_preset(it->value.front())) continue;
      const std::string value = it->value.front();
      if (on_command_line.count("config")) throw InputError("give the config file once: --model FILE or --config FILE");
      if (!file_exists(value))
        throw InputError("--model '" + value + "' is neither a preset (tiny, small, 7b, lwm-7b) nor a readable config file");
      config_file = value;
      cli.options.erase(it);
      break;
    }
    store_command_line(cli, vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kPlanHelp << "\n" << all << "\n";
      return 0;
    }
    // Training's options and inference's, each refused in the other's plan.
    inference = vm.count("inference") > 0;
    for (const char* name : {"seq-len", "dp", "sp", "global-batch-tokens", "micro-batch-tokens", "stage", "phases"})
      if (inference && on_command_line.count(name))
        throw InputError(std::string("--") + name + " is for training plans; --inference takes --context (the prompt's tokens), "
                         "--max-new-tokens and --ranks (the ring)");
    for (const char* name : {"context", "max-new-tokens", "memory-bandwidth-gbs", "link-latency-us", "inter-node-latency-us"})
      if (!inference && on_command_line.count(name))
        throw InputError(std::string("--") + name + " is for inference plans: add --inference");
    if (vm.count("config")) config_file = vm["config"].as<std::string>();
    std::map<std::string, StageText> stages;
    std::vector<std::string> stage_order;
    if (!config_file.empty()) {
      po::parsed_options parsed = parse_config_file(config_file, all);
      // Training keys the planner does not need (lr, steps, ...) are unregistered here and
      // skipped; [stage.NAME] sections give seq-len and global-batch-tokens per stage.
      const std::vector<std::string> train_keys = train_config_keys();
      for (const auto& o : parsed.options) {
        if (o.unregistered && o.string_key.rfind("stage.", 0) != 0 &&
            std::none_of(train_keys.begin(), train_keys.end(),
                         [&](const std::string& k) { return spelling_key(k) == spelling_key(o.string_key); })) {
          std::vector<std::string> known = train_keys;
          for (const std::string& k : option_names(all)) known.push_back(k);
          throw InputError("config file '" + config_file + "': unknown option '" + o.string_key + "'" +
                           did_you_mean(o.string_key, known));
        }
        if (!o.unregistered || o.string_key.rfind("stage.", 0) != 0 || o.value.empty()) continue;
        const std::size_t dot = o.string_key.find('.', 6);
        if (dot == std::string::npos) continue;
        const std::string name = o.string_key.substr(6, dot - 6), field = o.string_key.substr(dot + 1);
        if (!stages.count(name)) stage_order.push_back(name);
        if (field == "seq-len") stages[name].seq_len = o.value.front();
        if (field == "global-batch-tokens") stages[name].batch_tokens = o.value.front();
      }
      parsed.options.erase(std::remove_if(parsed.options.begin(), parsed.options.end(),
                                          [](const po::option& o) { return o.unregistered; }),
                           parsed.options.end());
      store_config_file(config_file, parsed, vm);  // the command line, stored first, wins
    }
    po::notify(vm);

    // Which stage of the file, if it has stages: --stage, or the longest sequence.
    if (!stage_name.empty() && stages.empty()) throw InputError("--stage needs a config file with [stage.*] sections");
    if (!stage_name.empty() && !stages.count(stage_name))
      throw InputError("--stage '" + stage_name + "' is not a [stage.*] section of '" + config_file + "'");
    if (!stages.empty()) {
      if (stage_name.empty()) {
        int64_t longest = -1;
        for (const std::string& name : stage_order) {
          if (stages[name].seq_len.empty()) throw InputError("stage '" + name + "' of '" + config_file + "' has no seq-len");
          const int64_t len = plan::parse_token_count(stages[name].seq_len, "seq-len of stage '" + name + "'");
          if (len > longest) longest = len, stage_name = name;
        }
        request.origin_note = "stage '" + stage_name + "' of " + config_file + " (the longest of " +
                              std::to_string(stages.size()) + "; --stage NAME for another)";
      } else {
        request.origin_note = "stage '" + stage_name + "' of " + config_file;
      }
      if (!on_command_line.count("seq-len")) seq_text = stages[stage_name].seq_len;
      else request.origin_note += "; --seq-len " + seq_text + " from the command line";
      // The stage's batch goes with the stage's length: a --seq-len of the command line plans
      // one sequence per dp group unless --global-batch-tokens says otherwise.
      if (!on_command_line.count("global-batch-tokens") && !on_command_line.count("seq-len"))
        batch_text = stages[stage_name].batch_tokens.empty() ? "0" : stages[stage_name].batch_tokens;
    }

    shape.model = plan_preset(model_arg);
    apply_model_options(vm, shape.model);
    request.model_name = config_file.empty() ? "model " + model_arg : config_file + " (preset " + model_arg + ")";
    if (inference) {
      plan::InferenceRequest iq;
      plan::InferenceShape& is = iq.shape;
      is.model = shape.model;
      iq.model_name = request.model_name + (model_arg == "lwm-7b" ? " (LWM-Text-1M)" : "");
      if (!vm.count("context")) throw InputError("--inference needs --context: the prompt's tokens (e.g. --context 1M)");
      if (!vm.count("ranks")) throw InputError("--inference needs --ranks: the ring's size (e.g. --ranks 16)");
      if (ranks < 1) throw InputError("--ranks must be at least 1 (got " + std::to_string(ranks) + ")");
      is.context_tokens = context_tokens;
      is.new_tokens = new_tokens;
      is.ranks = ranks;
      is.layout = parse_layout(layout_text);
      is.ffn_chunk_tokens = shape.ffn_chunk_tokens;
      // The storage: bf16 unless --precision says otherwise (tf32: fp32 storage at the tf32 rate).
      iq.precision = plan::parse_precision(vm.count("precision") ? precision_text : "bf16");
      is.weight_bytes_per_element = is.kv_bytes_per_element = iq.precision == plan::Precision::bf16 ? 2 : 4;
      is.validate();
      if (!(headroom >= 0 && headroom < 1)) throw InputError("--headroom must be a share in [0, 1), e.g. 0.1 for 10%");
      if (!(efficiency > 0 && efficiency <= 1)) throw InputError("--efficiency must be in (0, 1]");
      iq.device = check_device_options(vm, dev, ranks, true);
      if (!is_root) return 0;  // everything below is measurement and printing
      const DeviceFigures f = device_figures(dev, iq.device, iq.precision, ranks);
      iq.peak_flops_per_s = f.peak_flops_per_s;
      iq.peak_basis = f.peak_basis;
      iq.efficiency = efficiency;
      iq.capacity_bytes = f.capacity_bytes;
      iq.capacity_basis = f.capacity_basis;
      iq.headroom = headroom;
      iq.memory_bytes_per_s = f.memory_bytes_per_s;
      iq.memory_bandwidth_basis = f.memory_bandwidth_basis;
      iq.link_bytes_per_s = f.link_bytes_per_s;
      iq.inter_node_bytes_per_s = f.inter_node_bytes_per_s;
      iq.inter_node_basis = f.inter_node_basis;
      iq.link_latency_s = f.link_latency_s;
      iq.inter_node_latency_s = f.inter_node_latency_s;
      iq.latency_basis = f.latency_basis;
      iq.ranks_per_node = f.ranks_per_node;
      iq.reserve_bytes = f.reserve_bytes;
      const plan::InferenceResult result = plan::evaluate_inference(iq);
      std::fputs((vm.count("json") ? plan::inference_json(result) : plan::inference_report(result)).c_str(), stdout);
      std::fflush(stdout);
      return result.fits ? 0 : 1;
    }
    if (seq_text.empty()) throw InputError("--seq-len is required (e.g. --seq-len 32K)");
    shape.seq_len = plan::parse_token_count(seq_text, "--seq-len");
    shape.layout = parse_layout(layout_text);
    shape.kernel_threads = dev.threads;

    // The grid: --ranks with --dp or --sp, or --dp and --sp.
    if (ranks == 0 && dp > 0 && sp > 0) ranks = dp * sp;
    if (ranks <= 0) throw InputError("--ranks must be given (or both --dp and --sp)");
    if (dp == 0 && sp == 0) dp = 1, sp = ranks;
    else if (dp == 0) dp = sp > 0 && ranks % sp == 0 ? ranks / sp : -1;
    else if (sp == 0) sp = dp > 0 && ranks % dp == 0 ? ranks / dp : -1;
    if (dp <= 0 || sp <= 0 || dp * sp != ranks)
      throw InputError("--dp x --sp must equal --ranks (" + std::to_string(ranks) + ")");
    shape.dp = dp;
    shape.sp = sp;
    const int64_t batch_tokens =
        batch_text == "0" ? shape.seq_len * dp : plan::parse_token_count(batch_text, "--global-batch-tokens");
    if (batch_tokens % shape.seq_len != 0 || (batch_tokens / shape.seq_len) % dp != 0)
      throw InputError("--global-batch-tokens " + std::to_string(batch_tokens) + " must be a multiple of seq-len " +
                       std::to_string(shape.seq_len) + " x dp " + std::to_string(dp));
    shape.sequences_per_group = batch_tokens / shape.seq_len / dp;
    if (!micro_text.empty()) shape.micro_batch_sequences = data::micro_batch_sequences(micro_text == "0" ? 0 : plan::parse_token_count(micro_text, "--micro-batch-tokens"), batch_tokens, shape.seq_len, dp), request.choose_micro_batch = false;
    shape.validate();

    // The device, then the overrides.
    request.device = check_device_options(vm, dev, ranks, false);
    if (!(headroom >= 0 && headroom < 1)) throw InputError("--headroom must be a share in [0, 1), e.g. 0.1 for 10%");
    request.precision = plan::parse_precision(precision_text);
    request.shape.bf16 = request.precision == plan::Precision::bf16;  // train --precision bf16's buffers
    if (!(efficiency > 0 && efficiency <= 1)) throw InputError("--efficiency must be in (0, 1]");
    request.efficiency = efficiency;
    if (!is_root) return 0;  // everything below is measurement and printing

    const DeviceFigures f = device_figures(dev, request.device, request.precision, ranks);
    request.peak_flops_per_s = f.peak_flops_per_s;
    request.peak_basis = f.peak_basis;
    request.capacity_bytes = f.capacity_bytes;
    request.capacity_basis = f.capacity_basis;
    request.link_bytes_per_s = f.link_bytes_per_s;
    request.ranks_per_node = f.ranks_per_node;
    request.headroom = headroom;
    request.inter_node_bytes_per_s = f.inter_node_bytes_per_s;
    request.inter_node_basis = f.inter_node_basis;
    request.reserve_bytes = f.reserve_bytes;
    request.show_phases = vm.count("phases") > 0;
    json = vm.count("json") > 0;
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld plan: error: %s\n", e.what());
    return 2;
  }
  const plan::PlanResult result = plan::evaluate_plan(request);
  std::fputs((json ? plan::plan_json(result) : plan::plan_report(result)).c_str(), stdout);
  std::fflush(stdout);
  return result.fits() ? 0 : 1;
}

}  // namespace rw::cli
