// plan_command.cpp: `ringworld plan`: predicts, before anything runs, a training run's memory
// per rank, FLOPs, step time and ring overlap on a device from the table (src/plan/), and the
// smallest ring that fits. Runs as one process (no mpirun needed); under mpirun only rank 0
// measures and prints. The model comes from a preset, a config file as `train --config` reads
// it, and Hugging Face LlamaConfig overrides, the command line winning.
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
#include "src/plan/plan_report.h"
#include "src/plan/token_count.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

const char* kPlanHelp =
    "usage: ringworld plan --model 7b|tiny|small|CONFIG.ini --seq-len 1M --ranks N [--dp D --sp S]\n"
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
    "Exit status: 0 fits, 1 does not fit, 2 bad options.\n";

bool file_exists(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

struct StageText {
  std::string seq_len, batch_tokens;
};

bool is_preset(const std::string& name) { return name == "tiny" || name == "small" || name == "7b"; }

int env_threads() {
  const char* text = std::getenv("OMP_NUM_THREADS");
  const int n = text ? std::atoi(text) : 1;
  return n > 0 ? n : 1;
}

}  // namespace

int run_plan(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string model_arg = "tiny", config_file, stage_name, seq_text, batch_text = "0", device_name = "cpu",
              precision_text = "fp32", layout_text = "zigzag", micro_text;
  int ranks = 0, dp = 0, sp = 0, threads = env_threads(), ranks_per_node = 0;
  int gpus_per_node = 0;
  double device_tflops = 0, device_mem_gib = 0, link_gbps = 0, inter_node_gbps = 0, efficiency = 1.0,
         reserve_mib = -1, headroom = plan::PlanRequest::kDefaultHeadroom;
  plan::PlanRequest request;
  plan::TrainShape& shape = request.shape;
  bool json = false;

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
      ("threads", number(&threads)->min(1), "OpenMP threads per rank (default OMP_NUM_THREADS or 1)")
      ("device", po::value(&device_name), ("one of: " + plan::device_names() + " (default cpu)").c_str())
      ("precision", po::value(&precision_text), "fp32 (what ringworld computes) | tf32 | bf16: the peak FLOP/s used")
      ("device-tflops", po::value(&device_tflops), "peak TFLOP/s per rank (overrides the --device's table entry or measurement)")
      ("device-mem-gib", po::value(&device_mem_gib), "memory per rank, GiB (overrides the --device's)")
      ("link-gbps", po::value(&link_gbps), "link between ranks of a node, Gbit/s each way (overrides the --device's; 8 Gbit = 1 GB)")
      ("inter-node-gbps", po::value(&inter_node_gbps), "link from a rank to another node, Gbit/s each way (overrides the --device's)")
      ("ranks-per-node", po::value(&ranks_per_node),
       "ranks on one node: rings longer than this cross nodes; cpu: ranks sharing the node's memory "
       "(default: the table's node, 8 GPUs; cpu and custom: all ranks on one node)")
      ("gpus-per-node", po::value(&gpus_per_node), "GPUs (one rank each) on one node: --ranks-per-node for GPU devices")
      ("headroom", po::value(&headroom), "share of the memory kept free: fits means peak <= (1 - headroom) x memory (default 0.1)")
      ("efficiency", po::value(&efficiency), "share of the peak the kernels reach (default 1: a lower bound on time)")
      ("reserve-mib", po::value(&reserve_mib), "memory per rank before ringworld allocates (default from the table)")
      ("json", "print the plan as one JSON object instead of text")
      ("phases", "also list the memory of every phase of the step");
  model_opts.add_options()("model", po::value(&model_arg), "preset tiny | small | 7b, or a config file");
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
        throw InputError("--model '" + value + "' is neither a preset (tiny, small, 7b) nor a readable config file");
      config_file = value;
      cli.options.erase(it);
      break;
    }
    store_command_line(cli, vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kPlanHelp << "\n" << all << "\n";
      return 0;
    }
    if (vm.count("config")) config_file = vm["config"].as<std::string>();
    std::map<std::string, StageText> stages;
    std::vector<std::string> stage_order;
    if (!config_file.empty()) {
      po::parsed_options parsed = parse_config_file(config_file, all);
      // Training keys the planner does not need (lr, steps, ...) are unregistered here and
      // skipped; [stage.NAME] sections give seq-len and global-batch-tokens per stage.
      for (const auto& o : parsed.options) {
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

    shape.model = model::preset_config(model_arg);
    apply_model_options(vm, shape.model);
    request.model_name = config_file.empty() ? "model " + model_arg : config_file + " (preset " + model_arg + ")";
    if (seq_text.empty()) throw InputError("--seq-len is required (e.g. --seq-len 32K)");
    shape.seq_len = plan::parse_token_count(seq_text, "--seq-len");
    shape.layout = parse_layout(layout_text);
    shape.kernel_threads = threads;

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

    // The device, then the overrides. An override needs the device it overrides: without
    // --device the CPU of this machine would silently supply every other figure.
    for (const char* override_name : {"device-tflops", "device-mem-gib", "link-gbps", "inter-node-gbps"})
      if (vm.count(override_name) && !vm.count("device"))
        throw InputError(std::string("--") + override_name +
                         " needs --device: name the device whose figures it overrides (--device h100, --device cpu, "
                         "...), or --device custom with --device-tflops, --device-mem-gib and --link-gbps");
    request.device = plan::find_device(device_name);
    const bool is_custom = plan::is_custom(request.device);
    if (is_custom && !(vm.count("device-tflops") && vm.count("device-mem-gib") && vm.count("link-gbps")))
      throw InputError("--device custom needs --device-tflops, --device-mem-gib and --link-gbps");
    if (vm.count("gpus-per-node")) {
      if (request.device.name == "cpu") throw InputError("--gpus-per-node is for GPU devices; the cpu device takes --ranks-per-node");
      if (gpus_per_node < 1) throw InputError("--gpus-per-node must be at least 1");
      if (vm.count("ranks-per-node") && ranks_per_node != gpus_per_node)
        throw InputError("--gpus-per-node and --ranks-per-node differ (one rank per GPU: give one of them)");
      ranks_per_node = gpus_per_node;
    }
    if (!(headroom >= 0 && headroom < 1)) throw InputError("--headroom must be a share in [0, 1), e.g. 0.1 for 10%");
    if (vm.count("inter-node-gbps") && !(inter_node_gbps > 0)) throw InputError("--inter-node-gbps must be positive");
    request.precision = plan::parse_precision(precision_text);
    if (!(efficiency > 0 && efficiency <= 1)) throw InputError("--efficiency must be in (0, 1]");
    request.efficiency = efficiency;
    if (vm.count("device-tflops") && !(device_tflops > 0)) throw InputError("--device-tflops must be positive");
    if (vm.count("device-mem-gib") && !(device_mem_gib > 0)) throw InputError("--device-mem-gib must be positive");
    if (vm.count("link-gbps") && !(link_gbps > 0)) throw InputError("--link-gbps must be positive");
    if (vm.count("reserve-mib") && !(reserve_mib >= 0)) throw InputError("--reserve-mib must not be negative");
    if (vm.count("ranks-per-node") && ranks_per_node < 1) throw InputError("--ranks-per-node must be at least 1");
    if (is_custom && ranks_per_node > 0 && ranks_per_node < ranks && !vm.count("inter-node-gbps"))
      throw InputError("--device custom on more than one node (" + std::to_string(ranks) + " ranks, " +
                       std::to_string(ranks_per_node) + " per node) needs --inter-node-gbps");
    if (!is_root) return 0;  // everything below is measurement and printing

    const bool is_cpu = request.device.name == "cpu";
    if (device_tflops > 0) {
      request.peak_flops_per_s = device_tflops * 1e12;
      request.peak_basis = "--device-tflops";
    } else if (is_cpu) {
      const double gflops = device::create_backend("cpu")->measure_gemm_gflops(1024, 5, threads);
      request.peak_flops_per_s = gflops * 1e9;
      request.peak_basis = "sgemm measured now, " + std::to_string(threads) + " thread(s)";
    } else {
      request.peak_flops_per_s = request.device.peak_tflops(request.precision) * 1e12;
      request.peak_basis = "datasheet peak, dense";
    }
    if (device_mem_gib > 0) {
      request.capacity_bytes = device_mem_gib * 1024.0 * 1024.0 * 1024.0;
      request.capacity_basis = "--device-mem-gib";
    } else if (is_cpu) {
      const int sharing = ranks_per_node > 0 ? std::min(ranks_per_node, ranks) : ranks;
      request.capacity_bytes = static_cast<double>(available_memory_bytes()) / sharing;
      request.capacity_basis = "MemAvailable / " + std::to_string(sharing) + " rank(s) on this node";
    } else {
      request.capacity_bytes = request.device.memory_gib * 1024.0 * 1024.0 * 1024.0;
      request.capacity_basis = "datasheet";
    }
    request.link_bytes_per_s = (link_gbps > 0 ? link_gbps / 8.0 : request.device.link_gb_per_s) * 1e9;
    request.ranks_per_node = ranks_per_node > 0 ? ranks_per_node : request.device.ranks_per_node;  // 0: one node
    request.headroom = headroom;
    if (inter_node_gbps > 0) {
      request.inter_node_bytes_per_s = inter_node_gbps / 8.0 * 1e9;
      request.inter_node_basis = "--inter-node-gbps";
    } else {
      request.inter_node_bytes_per_s = request.device.inter_node_gb_per_s * 1e9;
      request.inter_node_basis = request.device.inter_node_basis;
    }
    request.reserve_bytes = (reserve_mib >= 0 ? reserve_mib : request.device.reserve_mib) * 1024.0 * 1024.0;
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
