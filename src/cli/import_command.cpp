// import_command.cpp: `ringworld import --from hf DIR | --from lwm-jax FILE --output CKPT.h5`:
// published LLaMA weights into a ringworld parameter file (io/model_import.h), one tensor in
// memory at a time. One process does the work (there is nothing to share out: the job is reading
// and writing files), so it refuses more than one rank rather than leave ranks idle in a collective.
#include <boost/program_options.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "io/attn_io.h"
#include "io/lwm_jax_import.h"
#include "io/model_import.h"
#include "mpi/runtime.h"
#include "src/cli/commands.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/tokenizer.h"
#include "src/vision/vqgan_import.h"
#include "src/vision/vqgan_weights.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace rw::cli {
namespace {

const char* kUsage =
    "usage: ringworld import --from hf DIR --output CKPT.h5 [--tokenizer FILE|none]\n"
    "       ringworld import --from lwm-jax FILE --config lwm-7b|FILE.json|FILE.ini --output CKPT.h5 [--tokenizer FILE|none]\n"
    "       ringworld import --from diffusers-vq DIR --output VQ.h5 [--image-size 256]\n"
    "       ringworld import --from lwm-vqgan FILE [--config lwm|tiny|CONFIG.json] --output VQ.h5 [--image-size 256]\n";

// The VQGAN importers (src/vision/vqgan_import.h): weights -> VQ.h5 (src/vision/vqgan_weights.h).
int import_vqgan(const std::string& from, const std::string& source, const std::string& config, int64_t image_size,
                 const std::string& output, bool quiet) {
  try {
    const double t0 = wall_seconds();
    io::check_output_path(output);
    std::unique_ptr<vision::VqganSource> src;
    if (from == "diffusers-vq") {
      src = vision::open_diffusers_vq(source, image_size);
    } else {
      vision::VqganConfig c;
      if (config.empty() || config == "lwm" || config == "tiny" || config == "tiny-1") {
        c = vision::VqganConfig::preset(config.empty() ? "lwm" : config);
      } else {
        std::ifstream in(config, std::ios::binary);
        if (!in) throw InputError("cannot read config file '" + config + "' (lwm, tiny, tiny-1 or a VQModel config.json)");
        c = vision::parse_diffusers_vq_config(std::string(std::istreambuf_iterator<char>(in), {}), config, image_size, nullptr);
      }
      if (config.empty() || config == "lwm" || image_size != 256) c.image_size = image_size;
      src = vision::open_lwm_vqgan(source, c);
    }
    if (!quiet) {
      std::printf("ringworld import: %s: %s\n", src->description().c_str(), src->config().describe().c_str());
      for (const auto& n : src->notes()) std::printf("  %s\n", n.c_str());
      std::fflush(stdout);
    }
    vision::write_vqgan_weights(output, src->config(), src->description(),
                                [&](const vision::VqganTensor& t, float* out) { src->fetch(t, out); });
    if (!quiet)
      std::printf("ringworld import: wrote %s (%lld parameters, float32) in %.1f s\n", output.c_str(),
                  static_cast<long long>(vision::vqgan_parameter_counts(src->config()).total()), wall_seconds() - t0);
  } catch (const InputError& e) {
    std::fprintf(stderr, "ringworld import: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// An INI file with LlamaConfig's names (also LWM's theta, max_sequence_length, param_scan_axis).
io::LwmModelSpec read_ini_spec(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot read config file '" + path + "'");
  po::options_description names;
  const char* integers[] = {"vocab_size", "vision_vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                            "num_key_value_heads", "max_position_embeddings", "max_sequence_length", "bos_token_id",
                            "eos_token_id", "param_scan_axis"};
  for (const char* n : integers) names.add_options()(n, po::value<int64_t>());
  for (const char* n : {"rms_norm_eps", "rope_theta", "theta"}) names.add_options()(n, po::value<double>());
  po::variables_map vm;
  try {
    po::store(po::parse_config_file(in, names, /*allow_unregistered=*/false), vm);
  } catch (const po::error& e) {
    throw InputError("config file '" + path + "': " + e.what());
  }
  io::LwmModelSpec s;
  s.origin = "config file '" + path + "'";
  auto integer = [&](std::optional<int64_t>& field, const char* name) {
    if (vm.count(name)) field = vm[name].as<int64_t>();
  };
  auto real = [&](std::optional<double>& field, const char* name) {
    if (vm.count(name)) field = vm[name].as<double>();
  };
  integer(s.vocab_size, "vocab_size");
  integer(s.vision_vocab_size, "vision_vocab_size");
  integer(s.hidden_size, "hidden_size");
  integer(s.intermediate_size, "intermediate_size");
  integer(s.num_hidden_layers, "num_hidden_layers");
  integer(s.num_attention_heads, "num_attention_heads");
  integer(s.num_key_value_heads, "num_key_value_heads");
  integer(s.max_position_embeddings, "max_sequence_length");
  integer(s.max_position_embeddings, "max_position_embeddings");
  integer(s.bos_token_id, "bos_token_id");
  integer(s.eos_token_id, "eos_token_id");
  integer(s.scan_axis, "param_scan_axis");
  real(s.rms_norm_eps, "rms_norm_eps");
  real(s.rope_theta, "theta");
  real(s.rope_theta, "rope_theta");
  return s;
}

io::LwmModelSpec read_spec(const std::string& config) {
  if (config.empty()) {
    io::LwmModelSpec s;
    s.origin = "the file's shapes";
    return s;
  }
  const std::string ext = fs::path(config).extension().string();
  if (ext == ".json") {
    std::ifstream in(config, std::ios::binary);
    if (!in) throw InputError("cannot read config file '" + config + "'");
    return io::parse_lwm_config_json(std::string(std::istreambuf_iterator<char>(in), {}), config);
  }
  if (ext == ".ini" || fs::exists(config)) return read_ini_spec(config);
  return io::lwm_model_preset(config);
}

// The tokenizer to record: "" for none. `given` is a path, "none", or "" (the model's own
// tokenizer.model beside it, when present).
std::string tokenizer_description(const std::string& given, const fs::path& default_path, int64_t vocab_size,
                                  std::vector<std::string>& notes) {
  if (given == "none") return "";
  std::string path = given;
  if (path.empty()) {
    std::error_code ec;
    if (!fs::exists(default_path, ec)) {
      notes.push_back("no tokenizer recorded (no " + default_path.string() + "; give --tokenizer FILE)");
      return "";
    }
    path = default_path.string();
#ifndef RINGWORLD_HAVE_SENTENCEPIECE
    notes.push_back(path + " not recorded: this build has no SentencePiece");
    return "";
#endif
  }
  const std::unique_ptr<data::Tokenizer> tokenizer = data::make_tokenizer("sentencepiece:" + path);
  if (tokenizer->vocab_size() > vocab_size)
    throw InputError("tokenizer '" + path + "' has " + std::to_string(tokenizer->vocab_size()) +
                     " pieces but the model's vocabulary is " + std::to_string(vocab_size));
  return tokenizer->description();
}

}  // namespace

int run_import(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string from, source, output, config, tokenizer;
  bool quiet = false;
  int64_t image_size = 256;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")
      ("from", po::value(&from), "hf (a Hugging Face LLaMA directory) | lwm-jax (LWM's JAX params file) | diffusers-vq (a "
       "VQModel directory) | lwm-vqgan (LWM's vqgan file: its Python pickle, read without executing anything, or msgpack)")
      ("source", po::value(&source), "the directory or file (also the positional argument)")
      ("output", po::value(&output), "parameter file to write (HDF5, atomic)")
      ("config", po::value(&config), "lwm-jax: lwm-7b | FILE.json | FILE.ini (what the shapes do not show)")
      ("tokenizer", po::value(&tokenizer), "SentencePiece model to record (default: tokenizer.model beside the weights; none)")
      ("image-size", po::value(&image_size), "VQGAN: the frames' side in pixels (not in the weights; default 256, LWM's)")
      ("quiet", po::bool_switch(&quiet), "print nothing on success");
  po::positional_options_description positional;
  positional.add("source", 1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).positional(positional).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kUsage << "\n" << desc << "\n";
      return 0;
    }
    if (from.empty() || source.empty() || output.empty()) throw InputError("--from, the source and --output are required");
    if (from != "hf" && from != "lwm-jax" && from != "diffusers-vq" && from != "lwm-vqgan")
      throw InputError("--from must be hf, lwm-jax, diffusers-vq or lwm-vqgan (got '" + from + "')");
    if (from == "diffusers-vq" && !config.empty())
      throw InputError("--config is for --from lwm-jax and lwm-vqgan (a VQModel directory has its config.json)");
    if (image_size < 1) throw InputError("--image-size must be positive");
    if (from == "hf" && !config.empty())
      throw InputError("--config is for --from lwm-jax (a Hugging Face directory has its config.json)");
    if (mpi::world_size() > 1)
      throw InputError("import runs on one process (it streams the weights from one file to another): run it without "
                       "mpirun or with -np 1");
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld import: error: %s\n%s", e.what(), kUsage);
    return 2;
  }
  if (from == "diffusers-vq" || from == "lwm-vqgan") return import_vqgan(from, source, config, image_size, output, quiet);

  try {
    const double t0 = wall_seconds();
    io::check_output_path(output);
    std::unique_ptr<io::ImportSource> src;
    fs::path tokenizer_default;
    if (from == "hf") {
      src = io::open_hf_directory(source);
      tokenizer_default = fs::path(source) / "tokenizer.model";
    } else {
      src = io::open_lwm_jax(source, read_spec(config));
      std::string file = source.substr(source.find("::") == std::string::npos ? 0 : source.find("::") + 2);
      tokenizer_default = fs::path(file).parent_path() / "tokenizer.model";
    }
    std::vector<std::string> notes = src->notes();
    const std::string recorded = tokenizer_description(tokenizer, tokenizer_default, src->config().llama.vocab_size, notes);
    if (!quiet) {
      std::printf("ringworld import: %s: %s\n", src->description().c_str(), src->config().llama.describe().c_str());
      for (const auto& n : notes) std::printf("  %s\n", n.c_str());
      if (!recorded.empty()) std::printf("  tokenizer: %s\n", recorded.c_str());
      std::fflush(stdout);
    }
    int next_percent = 10;
    io::write_imported_model(*src, output, recorded, [&](int64_t done, int64_t total) {
      const int percent = static_cast<int>(100 * done / total);
      // Progress only for runs long enough to want it (a real model), every 10%.
      if (!quiet && percent >= next_percent && wall_seconds() - t0 > 2.0) {
        std::fprintf(stderr, "  %3d%%  %lld of %lld tensors\n", percent, static_cast<long long>(done), static_cast<long long>(total));
        next_percent = percent / 10 * 10 + 10;
      }
    });
    if (!quiet)
      std::printf("ringworld import: wrote %s (%lld parameters, float32) in %.1f s\n", output.c_str(),
                  static_cast<long long>(src->config().llama.parameter_count()), wall_seconds() - t0);
  } catch (const InputError& e) {
    std::fprintf(stderr, "ringworld import: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace rw::cli
