// export_command.cpp: `ringworld export --to hf CKPT.h5 DIR`: a parameter file or training
// checkpoint as a Hugging Face LLaMA directory (io/hf_export.h), and the tokenizer the file
// records copied beside it when it is still the same file. One process, like import.
#include <boost/program_options.hpp>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "io/hf_export.h"
#include "io/model_import.h"
#include "mpi/runtime.h"
#include "src/cli/commands.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/tokenizer.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace rw::cli {
namespace {

const char* kUsage =
    "usage: ringworld export --to hf CKPT.h5 DIR [--dtype fp32|bf16|fp16] [--max-shard-size 5G]\n"
    "                        [--max-position-embeddings N]\n";

// "5G", "5GB", "500M", "2GiB", "123456": decimal suffixes as transformers' max_shard_size
// ("5GB" = 5e9 bytes), binary ones with an i.
uint64_t parse_size(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (!unit.empty() && unit.back() == 'B') unit.pop_back();
  double scale = 0;
  if (unit.empty()) scale = 1;
  else if (unit == "K") scale = 1e3;
  else if (unit == "M") scale = 1e6;
  else if (unit == "G") scale = 1e9;
  else if (unit == "T") scale = 1e12;
  else if (unit == "KI") scale = 1024.0;
  else if (unit == "MI") scale = 1024.0 * 1024;
  else if (unit == "GI") scale = 1024.0 * 1024 * 1024;
  if (used == 0 || scale == 0 || !(value > 0) || value * scale > 1e18)
    throw InputError("--max-shard-size '" + text + "' is not a size (e.g. 5G, 500M, 2GiB or a byte count)");
  return static_cast<uint64_t>(value * scale);
}

// The tokenizer a file records ("sentencepiece:PATH (cksum C N)") copied as DIR/tokenizer.model
// when PATH still holds that model.
std::string copy_tokenizer(const std::string& recorded, const std::string& dir) {
  const std::string prefix = "sentencepiece:", marker = " (cksum ";
  if (recorded.rfind(prefix, 0) != 0 || recorded.rfind(marker) == std::string::npos)
    return recorded.empty() ? "no tokenizer recorded" : "tokenizer '" + recorded + "' not copied";
  const std::string path = recorded.substr(prefix.size(), recorded.rfind(marker) - prefix.size());
  std::error_code ec;
  if (!fs::exists(path, ec)) return "tokenizer not copied: " + path + " no longer exists";
  std::string now;
  try {
    now = data::make_tokenizer(prefix + path)->description();
  } catch (const InputError& e) {
    return std::string("tokenizer not copied: ") + e.what();
  }
  if (now != recorded) return "tokenizer not copied: " + path + " has changed since the import (" + now + ")";
  io::copy_file_atomically(path, dir, "tokenizer.model");
  return "tokenizer.model copied from " + path;
}

}  // namespace

int run_export(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string to, input, dir, dtype, shard_text = "5G";
  int64_t max_positions = 0;
  bool quiet = false;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")
      ("to", po::value(&to), "hf (a Hugging Face LLaMA directory: safetensors + config.json)")
      ("input", po::value(&input), "parameter file or checkpoint (also the first positional argument)")
      ("dir", po::value(&dir), "directory to write (also the second positional argument)")
      ("dtype", po::value(&dtype), "fp32 | bf16 | fp16 (default: the dtype it was imported from, else fp32)")
      ("max-shard-size", po::value(&shard_text)->default_value(shard_text), "largest safetensors file (5G = 5e9 bytes)")
      ("max-position-embeddings", po::value(&max_positions), "config.json's (default: recorded at import, else the checkpoint's seq_len)")
      ("quiet", po::bool_switch(&quiet), "print nothing on success");
  po::positional_options_description positional;
  positional.add("input", 1).add("dir", 1);
  io::HfExportOptions options;
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).positional(positional).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kUsage << "\n" << desc << "\n";
      return 0;
    }
    if (to.empty() || input.empty() || dir.empty()) throw InputError("--to, the input file and the directory are required");
    if (to != "hf") throw InputError("--to must be hf (got '" + to + "')");
    if (vm.count("max-position-embeddings") && max_positions < 1) throw InputError("--max-position-embeddings must be positive");
    options.dtype = dtype;
    options.max_shard_bytes = parse_size(shard_text);
    options.max_position_embeddings = max_positions;
    if (mpi::world_size() > 1)
      throw InputError("export runs on one process (it streams the weights from one file to others): run it without "
                       "mpirun or with -np 1");
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld export: error: %s\n%s", e.what(), kUsage);
    return 2;
  }
  try {
    const double t0 = wall_seconds();
    int next_percent = 10;
    const io::HfExportResult r = io::export_hf(input, dir, options, [&](int64_t done, int64_t total) {
      const int percent = static_cast<int>(100 * done / total);
      // Progress only for runs long enough to want it (a real model), every 10%.
      if (!quiet && percent >= next_percent && wall_seconds() - t0 > 2.0) {
        std::fprintf(stderr, "  %3d%%  %lld of %lld tensors\n", percent, static_cast<long long>(done), static_cast<long long>(total));
        next_percent = percent / 10 * 10 + 10;
      }
    });
    const std::string tokenizer_note = copy_tokenizer(io::read_imported_attributes(input).tokenizer, dir);
    if (!quiet) {
      std::printf("ringworld export: wrote %s:", dir.c_str());
      for (const auto& f : r.files) std::printf(" %s", f.c_str());
      std::printf(" (%s, %.2f GB of tensors) in %.1f s\n", r.dtype.c_str(), r.tensor_bytes / 1e9, wall_seconds() - t0);
      for (const auto& n : r.notes) std::printf("  %s\n", n.c_str());
      std::printf("  %s\n", tokenizer_note.c_str());
    }
  } catch (const InputError& e) {
    std::fprintf(stderr, "ringworld export: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace rw::cli
