// forward_command.cpp: `ringworld forward`: runs a model from a parameter file on tokens read
// from HDF5, over a ring of all ranks (sp = N), and writes logits, the loss and optionally every
// parameter gradient: for validating the model against any framework.
#include <array>
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "device/backend.h"
#include "device/exec_context.h"
#include "io/attn_io.h"
#include "io/forward_io.h"
#include "io/input_file.h"
#include "io/params_io.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "mpi/watchdog.h"
#include "src/attention/attention_ops.h"
#include "src/cli/commands.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/model/transformer.h"
#include "src/train/fsdp_params.h"
#include "src/train/lwm_loss.h"

namespace po = boost::program_options;

namespace rw::cli {

int run_forward(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string checkpoint, input, output, layout_text = "zigzag", device_name = "cpu", precision_text = "fp32";
  bool backward = false, quiet = false;
  int block_q = 256, block_k = 256;
  double timeout = 900;
  po::options_description desc("options");
  desc.add_options()
      ("help,h", "show this help")
      ("checkpoint", po::value(&checkpoint), "parameters: /params/<Hugging Face name> float32, config as root attributes")
      ("input", po::value(&input), "tokens int32 or int64 [batch, seq]; optional targets, loss_weights, segment_ids, positions")
      ("output", po::value(&output), "logits [batch, seq, vocab], loss, and with --backward /grads/<name>")
      ("backward", po::bool_switch(&backward), "also write the gradient of the loss for every parameter")
      ("layout", po::value(&layout_text)->default_value(layout_text), "contiguous | striped | zigzag")
      ("block-q", count(&block_q)->min(1)->default_value(block_q), "attention query tile rows")
      ("block-k", count(&block_k)->min(1)->default_value(block_k), "attention key tile rows")
      ("device", po::value(&device_name)->default_value(device_name), device_option_help().c_str())
      ("precision", po::value(&precision_text)->default_value(precision_text)->notifier([](const std::string& v) { model::parse_precision(v); }), "fp32 | bf16 (bf16 weights copy, GEMM and attention inputs; fp32 residual, statistics, logits, loss and gradients)")
      ("timeout", number(&timeout)->min(0)->default_value(timeout), "seconds a rank may go without progress before the watchdog reports where every rank is and ends the job (0: never)")
      ("quiet", po::bool_switch(&quiet), "print nothing on success");
  po::variables_map vm;
  try {
    store_command_line(parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << "usage: mpirun -np N ringworld forward --checkpoint CKPT.h5 --input IN.h5 --output OUT.h5 [--backward]\n\n" << desc << "\n";
      return 0;
    }
    if (checkpoint.empty() || input.empty() || output.empty())
      throw InputError("--checkpoint, --input and --output are required");
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld forward: error: %s (see ringworld forward --help)\n", e.what());
    return 2;
  }

  auto fail = [&](const std::string& message) {
    if (is_root) std::fprintf(stderr, "ringworld forward: error: %s\n", message.c_str());
    return 1;
  };
  const int world = mpi::world_size();
  std::unique_ptr<mpi::ProcessGrid> grid;
  std::unique_ptr<device::Backend> backend;
  model::LlamaConfig config;
  Layout layout = Layout::zigzag;
  io::ForwardProblem problem;
  data::LocalBatch batch;
  std::string error;
  try {
    layout = parse_layout(layout_text);
    backend = device::make_backend(device_name);
    io::check_input_file(checkpoint, "checkpoint");
    io::check_input_file(input, "input");
    io::check_output_path(output);
    config = io::read_model_config(checkpoint);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  // Collective: built only once every rank got this far, so no rank waits in it alone.
  grid = std::make_unique<mpi::ProcessGrid>(1, world, timeout > 0 ? 2 * timeout + 30 : 0);
  try {
    batch = io::read_forward_input(input, config.total_vocab_size(), layout, world, grid->sp_rank(), &problem);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  mpi::Watchdog watchdog(timeout);  // a rank without progress for `timeout` s: report and end the job

  const device::ExecContext exec = device::ExecContext::on_default_stream(*backend);
  const model::Precision precision = model::parse_precision(precision_text);
  train::FsdpParams params(config, *grid, exec, train::fsdp_options_for(precision));
  try {
    io::read_param_shards(checkpoint, params);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);

  RingOptions ring_options;
  ring_options.causal = true;
  ring_options.tiling = {block_q, block_k};
  RingAttentionOp attention(exec, grid->ring(), ring_options);
  model::TransformerOptions transformer_options;
  transformer_options.precision = precision;
  model::Transformer model(config, params, attention, exec, transformer_options);
  // The training step's loss: the weighted mean (a vision model: LWM's, train/lwm_loss.h).
  std::array<double, 2> kinds = train::kind_weight_sums(batch, config);
  grid->allreduce_sum(kinds.data(), 2);
  const double weight_sum = kinds[0] + kinds[1];
  train::apply_lwm_loss_weights(batch, config, kinds);
  const double t0 = wall_seconds();
  std::vector<float> logits(static_cast<std::size_t>(batch.token_count()) * config.total_vocab_size());
  const double loss_sum = grid->allreduce_sum(model.forward(batch, logits.data()));
  const double loss = weight_sum > 0 ? loss_sum / weight_sum : 0.0;
  if (backward) {
    params.zero_grads();
    model.forward_backward(batch, weight_sum > 0 ? 1.0 / weight_sum : 0.0);
  }
  const double seconds = mpi::allreduce_max(wall_seconds() - t0);
  try {
    io::write_forward_output(output, config, problem, local_token_runs(layout, problem.seq_len, world, grid->sp_rank()),
                             logits.data(), loss, backward ? &params : nullptr);
  } catch (const InputError& e) {
    return fail(e.what());
  }
  if (is_root && !quiet)
    std::printf("ringworld forward: %d rank(s), %s layout, batch %lld x seq %lld, loss %.6f, %.3f s; wrote %s\n", world,
                layout_name(layout).c_str(), static_cast<long long>(problem.batch),
                static_cast<long long>(problem.seq_len), loss, seconds, output.c_str());
  return 0;
}

}  // namespace rw::cli
