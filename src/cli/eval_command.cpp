// eval_command.cpp: `ringworld eval needle`: needle-in-a-haystack accuracy of a checkpoint (or a
// parameter file) over context lengths x needle depths, on the ring of all ranks. Prints a text
// heatmap, writes a CSV and, when gnuplot is installed, a PNG heatmap.
#include <boost/program_options.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "device/backend.h"
#include "device/exec_context.h"
#include "io/attn_io.h"
#include "io/params_io.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "src/attention/attention_ops.h"
#include "io/input_file.h"
#include "src/cli/commands.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/infer/needle_eval.h"
#include "src/model/transformer.h"
#include "src/train/fsdp_params.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

void reduce_over_grid(std::vector<double>& values, void* grid) {
  static_cast<mpi::ProcessGrid*>(grid)->allreduce_sum(values.data(), static_cast<int>(values.size()));
}

void print_progress(const std::string& line) {
  if (mpi::world_rank() == 0) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

const char* kEvalUsage =
    "usage: mpirun -np N ringworld eval MODE [options]\n"
    "\n"
    "modes:\n"
    "  needle   passkey retrieval accuracy over context lengths x needle depths (text heatmap, CSV, PNG)\n"
    "\n"
    "`ringworld eval needle --help` describes its options.\n";

const char* kNeedleHelp =
    "usage: mpirun -np N ringworld eval needle --checkpoint CKPT.h5 [options]\n"
    "\n"
    "Teacher-forced retrieval on the built-in passkey task (`train --data synthetic:passkey`): each\n"
    "document hides a needle (<key> NAME <is> digits) at a depth of a filler text and asks for it at\n"
    "the end; an answer counts when every digit is the model's greedy choice. The model must have\n"
    "been trained on that task (its token ids are the task's own language, vocabulary >= 64).\n"
    "Lengths take K/M suffixes; each must divide over the ring (by 2N for zigzag).\n"
    "Exit status: 0 done, 1 bad model or file, 2 bad options.\n";

bool have_program(const char* name) {
  const std::string command = std::string("command -v ") + name + " > /dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

}  // namespace

int run_eval(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  if (argc < 2) {
    if (is_root) std::fprintf(stderr, "ringworld eval: error: missing mode (needle)\n%s", kEvalUsage);
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "--help" || mode == "-h" || mode == "help") {
    if (is_root) std::fputs(kEvalUsage, stdout);
    return 0;
  }
  if (mode != "needle") {
    if (is_root)
      std::fprintf(stderr, "ringworld eval: error: unknown eval mode '%s'%s\n%s", mode.c_str(),
                   did_you_mean(mode, {"needle"}).c_str(), kEvalUsage);
    return 2;
  }
  std::string checkpoint, lengths_text = "512,1K,2K,4K,8K", depths_text = "0,25,50,75,100", csv, png, layout_text = "zigzag",
                          title, device_name = "cpu";
  infer::NeedleEvalOptions options;
  int block = 256;
  po::options_description desc("eval needle options");
  desc.add_options()("help,h", "show this help")
      ("checkpoint", po::value(&checkpoint), "checkpoint or parameter file (HDF5)")
      ("lengths", po::value(&lengths_text)->default_value(lengths_text), "context lengths (K = 1024)")
      ("depths", po::value(&depths_text)->default_value(depths_text), "needle depths in percent")
      ("trials", number(&options.trials)->min(1)->default_value(options.trials), "documents per (length, depth)")
      ("needles", number(&options.passkey.needles)->min(1)->max(data::PasskeyVocab::kNames)->default_value(1),
       "needles per document")
      ("ask", number(&options.passkey.asked)->min(1)->max(data::PasskeyVocab::kNames)->default_value(1),
       "needles asked for (at most --needles)")
      ("digits", number(&options.passkey.digits)->min(1)->max(1000)->default_value(options.passkey.digits),
       "digits per answer")
      ("seed", number(&options.seed)->default_value(options.seed), "seed of the evaluation documents")
      ("layout", po::value(&layout_text)->default_value(layout_text), "contiguous | striped | zigzag")
      ("block", count(&block)->min(1)->default_value(block), "attention tile rows")
      ("device", po::value(&device_name)->default_value(device_name), device_option_help().c_str())
      ("csv", po::value(&csv), "write the accuracies here (CSV)")
      ("png", po::value(&png), "write a heatmap here (PNG, needs gnuplot)")
      ("title", po::value(&title), "title of the heatmap");
  po::variables_map vm;
  try {
    store_command_line(parse_command_line(argc - 1, argv + 1, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kNeedleHelp << "\n" << desc << "\n";
      return 0;
    }
    if (checkpoint.empty()) throw InputError("--checkpoint is required");
    options.lengths = infer::parse_lengths(lengths_text);
    options.depths = infer::parse_depths(depths_text);
    options.layout = parse_layout(layout_text);
    if (options.passkey.asked > options.passkey.needles)
      throw InputError("--ask (" + std::to_string(options.passkey.asked) + ") must be at most --needles (" +
                       std::to_string(options.passkey.needles) + ")");
    for (int length : options.lengths) check_ring_split(options.layout, length, mpi::world_size());
    if (!csv.empty()) io::check_output_path(csv);
    if (!png.empty()) io::check_output_path(png);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld eval needle: error: %s\n", e.what());
    return 2;
  }

  std::string error;
  model::LlamaConfig config;
  std::unique_ptr<device::Backend> backend;
  try {
    backend = device::make_backend(device_name);
    io::check_input_file(checkpoint, "checkpoint");
    config = io::read_model_config(checkpoint);
    if (config.vocab_size < data::PasskeyVocab::kMinVocab)
      throw InputError("'" + checkpoint + "' has vocab_size " + std::to_string(config.vocab_size) +
                       ": eval needle's passkey task needs at least " + std::to_string(data::PasskeyVocab::kMinVocab) +
                       " token ids (it evaluates models trained with --data synthetic:passkey); no accuracy to report");
    options.passkey.vocab_size = static_cast<int>(config.vocab_size);
    for (int length : options.lengths) data::make_passkey_document(options.passkey, length, 0, 0, 0);  // validates
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root) std::fprintf(stderr, "ringworld eval needle: error: %s\n", error.c_str());
    return 1;
  }
  mpi::ProcessGrid grid(1, mpi::world_size());
  const device::ExecContext exec = device::ExecContext::on_default_stream(*backend);
  train::FsdpParams params(config, grid, exec);
  try {
    io::read_param_shards(checkpoint, params);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root) std::fprintf(stderr, "ringworld eval needle: error: %s\n", error.c_str());
    return 1;
  }
  RingOptions ring_options;
  ring_options.causal = true;
  ring_options.tiling = {block, block};
  RingAttentionOp attention(exec, grid.ring(), ring_options);
  model::Transformer model(config, params, attention, exec);
  if (is_root) {
    std::printf("ringworld eval needle: %s (rope_theta %g) on %d rank(s); %zu lengths x %zu depths x %d trials\n",
                checkpoint.c_str(), config.rope_theta, grid.size(), options.lengths.size(), options.depths.size(),
                options.trials);
    std::fflush(stdout);
  }
  const double t0 = wall_seconds();
  const auto cells = infer::evaluate_needles(model, options, grid.sp(), grid.sp_rank(), &reduce_over_grid, &grid,
                                             &print_progress);
  if (!is_root) return 0;
  std::printf("needle accuracy (%s, %d trial(s) per cell, %.1f s):\n%s", title.empty() ? checkpoint.c_str() : title.c_str(),
              options.trials, wall_seconds() - t0, infer::needle_table(cells).c_str());
  if (!csv.empty()) {
    const std::string tmp = csv + ".tmp";
    {
      std::ofstream out(tmp);
      out << "length,depth,trials,correct,accuracy\n";
      for (const auto& c : cells) out << c.length << "," << c.depth << "," << c.trials << "," << c.correct << "," << c.accuracy() << "\n";
    }
    std::rename(tmp.c_str(), csv.c_str());
    std::printf("  wrote %s\n", csv.c_str());
  }
  if (!png.empty()) {
    if (csv.empty() || !have_program("gnuplot")) {
      std::printf("  skipped the PNG heatmap: %s\n", csv.empty() ? "it is drawn from --csv" : "gnuplot is not installed (apt-get install gnuplot-nox)");
    } else {
      // Cells as a matrix: x = length index, y = depth index.
      const std::string script = png + ".gp";
      std::ofstream gp(script);
      gp << "set terminal png size 720,420\nset output '" << png << "'\nset title '"
         << (title.empty() ? "needle retrieval accuracy" : title) << "'\nset xlabel 'context length'\nset ylabel 'needle depth (%)'\n"
         << "set cbrange [0:1]\nset palette defined (0 '#b2182b', 0.5 '#f7f7f7', 1 '#2166ac')\nset datafile separator ','\n"
         << "set xtics (";
      for (std::size_t i = 0; i < options.lengths.size(); ++i) gp << (i ? ", " : "") << "'" << options.lengths[i] << "' " << i;
      gp << ")\nset ytics (";
      for (std::size_t i = 0; i < options.depths.size(); ++i) gp << (i ? ", " : "") << "'" << options.depths[i] << "' " << i;
      gp << ")\nset xrange [-0.5:" << options.lengths.size() - 0.5 << "]\nset yrange [-0.5:" << options.depths.size() - 0.5
         << "]\n$cells << EOD\n";
      for (std::size_t l = 0; l < options.lengths.size(); ++l)
        for (std::size_t d = 0; d < options.depths.size(); ++d)
          for (const auto& c : cells)
            if (c.length == options.lengths[l] && c.depth == options.depths[d]) gp << l << "," << d << "," << c.accuracy() << "\n";
      gp << "EOD\nplot $cells using 1:2:3 with image notitle, $cells using 1:2:(sprintf('%.2f',$3)) with labels notitle\n";
      gp.close();
      const std::string command = "gnuplot '" + script + "' 2>&1";
      if (std::system(command.c_str()) == 0) std::printf("  wrote %s\n", png.c_str());
      else std::printf("  gnuplot failed; no PNG\n");
      std::remove(script.c_str());
    }
  }
  return 0;
}

}  // namespace rw::cli
