// ckpt_command.cpp: `ringworld ckpt info FILE` (attributes, tensors, shapes, checksum validity)
// and `ringworld ckpt convert --input A --output B` (checkpoint -> plain parameter file with
// the same names, readable by any HDF5 tool; or a parameter file -> a checkpoint at step 0 with
// zero optimizer state).
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "io/attn_io.h"
#include "io/checkpoint.h"
#include "io/params_io.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "io/input_file.h"
#include "src/cli/commands.h"
#include "src/cli/option_parsing.h"
#include "src/common/input_error.h"
#include "src/train/fsdp_params.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

int fail(const std::string& message) {
  if (mpi::world_rank() == 0) std::fprintf(stderr, "ringworld ckpt: error: %s\n", message.c_str());
  return 1;
}

// True when both names reach one existing file (the same path, a link, a hard link).
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int ckpt_info(const std::string& path) {
  const bool is_root = mpi::world_rank() == 0;
  std::string error, listing;
  model::LlamaConfig config;
  io::CheckpointState state;
  bool is_checkpoint = false;
  try {
    io::check_input_file(path, "checkpoint");
    listing = io::describe_checkpoint(path);
    is_checkpoint = io::is_checkpoint_file(path);
    if (is_checkpoint) state = io::read_checkpoint_state(path, &config);
    else config = io::read_model_config(path);  // a plain parameter file is fine too
    if (!is_checkpoint) listing += "  (a parameter file, not a checkpoint)\n";
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root && !listing.empty()) std::printf("%s  INVALID: %s\n", listing.c_str(), error.c_str());
    return listing.empty() ? fail(error) : 1;
  }
  if (is_root) std::printf("%s", listing.c_str());
  mpi::ProcessGrid grid(1, mpi::world_size());
  train::FsdpParams params(config, grid);
  try {
    if (is_checkpoint) io::load_checkpoint(path, params, true);
    else io::read_param_shards(path, params);
  } catch (const InputError& e) {
    error = e.what();
  }
  error = mpi::agree_on_error(error);
  if (is_root) {
    if (error.empty())
      std::printf("  valid: %s; model %s%s\n", is_checkpoint ? "every tensor present, shaped and checksummed" : "every parameter present and shaped",
                  config.describe().c_str(),
                  is_checkpoint ? (", stage '" + state.stage + "' step " + std::to_string(state.step)).c_str() : "");
    else
      std::printf("  INVALID: %s\n", error.c_str());
  }
  return error.empty() ? 0 : 1;
}

int ckpt_convert(const std::string& input, const std::string& output) {
  std::string error;
  model::LlamaConfig config;
  bool from_checkpoint = false;
  try {
    io::check_input_file(input, "--input");
    io::check_output_path(output);
    if (same_file(input, output))
      throw InputError("--output '" + output + "' is the input file: convert writes a new file (choose another name)");
    try {
      io::read_checkpoint_state(input, &config);
      from_checkpoint = true;
    } catch (const InputError&) {
      config = io::read_model_config(input);
    }
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  mpi::ProcessGrid grid(1, mpi::world_size());
  train::FsdpParams params(config, grid);
  try {
    if (from_checkpoint) {
      io::load_checkpoint(input, params, false);
      io::write_sharded_tensors(output, config, params, {{"/params", io::TensorGroup::Source::weights}});
    } else {
      io::read_param_shards(input, params);
      io::CheckpointState state;
      state.layout = "zigzag";
      state.world_size = grid.size();
      state.dp = grid.dp();
      state.sp = grid.sp();
      io::save_checkpoint(output, config, params, state);
    }
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  if (mpi::world_rank() == 0)
    std::printf("ringworld ckpt convert: %s (%s) -> %s (%s)\n", input.c_str(), from_checkpoint ? "checkpoint" : "parameters",
                output.c_str(), from_checkpoint ? "parameters" : "checkpoint at step 0");
  return 0;
}

}  // namespace

int run_ckpt(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  const char* usage =
      "usage: [mpirun -np N] ringworld ckpt info FILE\n"
      "       [mpirun -np N] ringworld ckpt convert --input FILE --output FILE\n"
      "  info:    attributes, tensors and shapes of a checkpoint or parameter file, and whether every\n"
      "           tensor is present, shaped and checksummed.\n"
      "  convert: a checkpoint becomes a plain parameter file (/params/<name>, config attributes);\n"
      "           a parameter file becomes a checkpoint at step 0 with zero optimizer state.\n"
      "`ringworld ckpt info --help`, `ringworld ckpt convert --help` describe each.\n"
      "Exit status: 0 done, 1 bad or invalid file, 2 bad options.\n";
  const std::vector<std::string> subcommands = {"info", "convert"};
  if (argc < 2) {
    if (is_root) std::fprintf(stderr, "ringworld ckpt: error: missing subcommand (info or convert)\n%s", usage);
    return 2;
  }
  const std::string sub = argv[1];
  if (sub == "--help" || sub == "-h" || sub == "help") {
    if (is_root) std::fputs(usage, stdout);
    return 0;
  }
  if (sub == "info") {
    std::string file;
    po::options_description desc("ckpt info options");
    desc.add_options()("help,h", "show this help")("file", po::value(&file), "checkpoint or parameter file (HDF5)");
    po::positional_options_description positional;
    positional.add("file", 1);
    try {
      po::variables_map vm;
      store_command_line(parse_command_line(argc - 1, argv + 1, desc, &positional), vm);
      po::notify(vm);
      if (vm.count("help")) {
        if (is_root)
          std::cout << "usage: [mpirun -np N] ringworld ckpt info FILE\n\n"
                       "Prints the attributes (format, version, model config, step, stage, grid at save), every tensor\n"
                       "with its shape, and whether every tensor is present, shaped and checksummed (INVALID: why,\n"
                       "exit 1, when not). FILE may also be a plain parameter file (train --save-params).\n\n"
                    << desc << "\n";
        return 0;
      }
      if (file.empty()) throw InputError("FILE is required");
    } catch (const std::exception& e) {
      if (is_root) std::fprintf(stderr, "ringworld ckpt info: error: %s (see ringworld ckpt info --help)\n", e.what());
      return 2;
    }
    return ckpt_info(file);
  }
  if (sub == "convert") {
    std::string input, output;
    po::options_description desc("ckpt convert options");
    desc.add_options()("help,h", "show this help")("input", po::value(&input), "checkpoint or parameter file")(
        "output", po::value(&output), "file to write (atomic; never the input)");
    try {
      po::variables_map vm;
      store_command_line(parse_command_line(argc - 1, argv + 1, desc), vm);
      po::notify(vm);
      if (vm.count("help")) {
        if (is_root)
          std::cout << "usage: [mpirun -np N] ringworld ckpt convert --input FILE --output FILE\n\n"
                       "A checkpoint becomes a plain parameter file (/params/<name> and the config as attributes,\n"
                       "what `forward --checkpoint` and any HDF5 tool read); a parameter file becomes a checkpoint at\n"
                       "step 0 with zero optimizer state. The output is written under a temporary name and renamed.\n\n"
                    << desc << "\n";
        return 0;
      }
      if (input.empty() || output.empty()) throw InputError("--input and --output are required");
    } catch (const std::exception& e) {
      if (is_root) std::fprintf(stderr, "ringworld ckpt convert: error: %s (see ringworld ckpt convert --help)\n", e.what());
      return 2;
    }
    return ckpt_convert(input, output);
  }
  if (is_root)
    std::fprintf(stderr, "ringworld ckpt: error: unknown subcommand '%s'%s\n%s", sub.c_str(),
                 did_you_mean(sub, subcommands).c_str(), usage);
  return 2;
}

}  // namespace rw::cli
