// fuzz_import.cpp: the importers (`ringworld import`) and every format they read: safetensors
// headers and tensors (io/safetensors.cpp), Hugging Face config.json and the shard index
// (io/hf_config.cpp, io/hf_import.cpp), LWM's JAX msgpack stream (io/lwm_jax_stream.cpp,
// io/lwm_jax_import.cpp), diffusers' VQModel config and weights and LWM's vqgan stream
// (src/vision/vqgan_import.cpp) and pickle (io/pickle_reader.cpp), and SentencePiece model files (src/data/sentencepiece_tokenizer.cpp).
//
// The first byte of an input picks the mode (its value modulo 6); the rest is split into files at
// kPartSeparator (fuzz_support.h), written into a fresh directory, and the importer is run as
// the command runs it (run_import, one process), output and all:
//   0 hf            config.json | model.safetensors, or
//                   config.json | model.safetensors.index.json | shard 1 | shard 2 ...
//                   (shards named model-0000N.safetensors, N from 1)
//   1 lwm-jax       the stream (params) | config.json (optional: {"num_attention_heads": 1})
//   2 diffusers-vq  config.json | diffusion_pytorch_model.safetensors (--image-size 16)
//   3 lwm-vqgan     the stream or the pickle (vqgan) | config.json (optional: --config tiny-1)
//   4 formats       the bytes, in memory, to every parser: parse_safetensors (and each
//                   tensor's data converted), parse_safetensors_index, parse_hf_config,
//                   parse_lwm_config_json, parse_diffusers_vq_config (and the tensors its config
//                   implies), parse_lwm_jax_stream (and every array's bytes), read_pickle_arrays
//                   (io/pickle_reader.cpp: every array's bytes, converted to float32)
//   5 tokenizer     the bytes as a SentencePiece model (make_tokenizer): load, encode, decode
// A finding: a crash, a sanitizer report, a hang or a huge allocation (libFuzzer's -timeout and
// -rss_limit_mb), rw::fatal, an exception other than InputError escaping, or a broken promise
// checked below (an import that succeeds writes a file that reads back: config and every
// tensor; a parsed header's tensors and a stream's arrays lie inside the bytes and match their
// shapes; a config.json round-trips through our writer; token ids are inside the vocabulary).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "io/hf_config.h"
#include "io/lwm_jax_import.h"
#include "io/lwm_jax_stream.h"
#include "io/model_import.h"
#include "io/param_file_reader.h"
#include "io/pickle_reader.h"
#include "io/safetensors.h"
#include "src/cli/commands.h"
#include "src/common/input_error.h"
#include "src/data/tokenizer.h"
#include "src/vision/vqgan_import.h"
#include "src/vision/vqgan_weights.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_import: %s\n", what.c_str());
  std::abort();
}

// Runs a command as main would, minus the catch of main: anything but a return is a finding.
int run(int (*command)(int, char**), std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  try {
    return command(static_cast<int>(args.size()), argv.data());
  } catch (const std::exception& e) {
    finding("exception escaped " + args[0] + " " + args[2] + ": " + e.what());
  }
}

bool same_config(const rw::model::LlamaConfig& a, const rw::model::LlamaConfig& b) {
  return a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size &&
         a.num_hidden_layers == b.num_hidden_layers && a.num_attention_heads == b.num_attention_heads &&
         a.num_key_value_heads == b.num_key_value_heads && a.rms_norm_eps == b.rms_norm_eps &&
         a.rope_theta == b.rope_theta;
}

// An imported LLaMA: the file reads back, config and every tensor (shapes checked by the reader).
void check_llama_output(const std::string& path) {
  try {
    const rw::io::ParamFileReader reader(path);
    const rw::model::LlamaConfig c = reader.model_config();
    for (const auto& unit : rw::model::parameter_units(c))
      for (const auto& t : unit.tensors) (void)reader.read_tensor("/params/" + t.name, t.shape);
  } catch (const rw::InputError& e) {
    finding(std::string("an imported parameter file does not read back: ") + e.what());
  }
}

void check_vqgan_output(const std::string& path) {
  try {
    (void)rw::vision::read_vqgan_weights(path);
  } catch (const rw::InputError& e) {
    finding(std::string("an imported VQGAN weight file does not read back: ") + e.what());
  }
}

void import_hf(const std::vector<std::string>& parts) {
  if (parts.size() < 2) return;
  const rw::fuzz::TempDir dir;
  rw::fuzz::write_file(dir.path() + "/config.json", parts[0]);
  if (parts.size() == 2) {
    rw::fuzz::write_file(dir.path() + "/model.safetensors", parts[1]);
  } else {
    rw::fuzz::write_file(dir.path() + "/model.safetensors.index.json", parts[1]);
    for (std::size_t i = 2; i < parts.size(); ++i)
      rw::fuzz::write_file(dir.path() + "/model-0000" + std::to_string(i - 1) + ".safetensors", parts[i]);
  }
  const std::string out = dir.path() + "/out.h5";
  if (run(rw::cli::run_import, {"import", "--from", "hf", dir.path(), "--output", out, "--tokenizer", "none", "--quiet"}) == 0)
    check_llama_output(out);
}

void import_lwm_jax(const std::vector<std::string>& parts) {
  const rw::fuzz::TempDir dir;
  rw::fuzz::write_file(dir.path() + "/params", parts[0]);
  rw::fuzz::write_file(dir.path() + "/config.json", parts.size() > 1 ? parts[1] : "{\"num_attention_heads\": 1}");
  const std::string out = dir.path() + "/out.h5";
  if (run(rw::cli::run_import, {"import", "--from", "lwm-jax", dir.path() + "/params", "--config", dir.path() + "/config.json",
                                "--output", out, "--tokenizer", "none", "--quiet"}) == 0)
    check_llama_output(out);
}

void import_diffusers_vq(const std::vector<std::string>& parts) {
  if (parts.size() < 2) return;
  const rw::fuzz::TempDir dir;
  rw::fuzz::write_file(dir.path() + "/config.json", parts[0]);
  rw::fuzz::write_file(dir.path() + "/diffusion_pytorch_model.safetensors", parts[1]);
  const std::string out = dir.path() + "/out.h5";
  if (run(rw::cli::run_import, {"import", "--from", "diffusers-vq", dir.path(), "--output", out, "--image-size", "16", "--quiet"}) == 0)
    check_vqgan_output(out);
}

void import_lwm_vqgan(const std::vector<std::string>& parts) {
  const rw::fuzz::TempDir dir;
  rw::fuzz::write_file(dir.path() + "/vqgan", parts[0]);
  std::string config = "tiny-1";
  if (parts.size() > 1) {
    config = dir.path() + "/config.json";
    rw::fuzz::write_file(config, parts[1]);
  }
  const std::string out = dir.path() + "/out.h5";
  if (run(rw::cli::run_import, {"import", "--from", "lwm-vqgan", dir.path() + "/vqgan", "--config", config, "--output", out,
                                "--image-size", "8", "--quiet"}) == 0)
    check_vqgan_output(out);
}

// Every byte of [begin, begin + n) is inside the input (ASan would also see a read past the copy).
void check_inside(const uint8_t* begin, uint64_t n, const std::vector<uint8_t>& bytes, const std::string& what) {
  const uint8_t* lo = bytes.data();
  if (n == 0) return;
  if (begin < lo || begin > lo + bytes.size() || n > static_cast<uint64_t>(lo + bytes.size() - begin))
    finding(what + " lies outside the input");
}

void formats(const uint8_t* data, std::size_t size) {
  // An exact-size heap copy: AddressSanitizer reports any read past the end.
  const std::vector<uint8_t> bytes(data, data + size);
  const std::string text(data, data + size);
  try {
    const rw::io::SafetensorsHeader h = rw::io::parse_safetensors(bytes.data(), bytes.size(), "fuzz");
    std::vector<float> values;
    for (const auto& t : h.tensors) {
      const int64_t element = rw::io::safetensors_dtype_size(t.dtype);
      if (t.end < t.begin || static_cast<uint64_t>(t.count()) * static_cast<uint64_t>(element) != t.end - t.begin)
        finding("parse_safetensors accepted tensor '" + t.name + "' whose byte range does not match its shape");
      check_inside(bytes.data() + h.data_start + t.begin, t.end - t.begin, bytes, "safetensors tensor '" + t.name + "'");
      if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16") continue;
      values.resize(static_cast<std::size_t>(t.count()));
      rw::io::convert_to_f32(bytes.data() + h.data_start + t.begin,
                             t.dtype == "F32" ? rw::io::SourceDtype::f32 : t.dtype == "F16" ? rw::io::SourceDtype::f16 : rw::io::SourceDtype::bf16,
                             t.count(), values.data());
    }
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
  try {
    (void)rw::io::parse_safetensors_index(text, "fuzz");
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
  try {
    const rw::io::HfModelConfig c = rw::io::parse_hf_config(text, "fuzz");
    // What we write for a config we read must read back as the same config.
    const rw::io::HfModelConfig again = rw::io::parse_hf_config(rw::io::make_hf_config_json(c, "float32"), "round trip");
    if (!same_config(c.llama, again.llama) || c.max_position_embeddings != again.max_position_embeddings ||
        (c.bos_token_id >= 0 && c.bos_token_id != again.bos_token_id) || (c.eos_token_id >= 0 && c.eos_token_id != again.eos_token_id))
      finding("config.json does not round-trip through make_hf_config_json");
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
  try {
    (void)rw::io::parse_lwm_config_json(text, "fuzz");
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
  try {
    std::vector<std::string> notes;
    const rw::vision::VqganConfig c = rw::vision::parse_diffusers_vq_config(text, "fuzz", 16, &notes);
    (void)rw::vision::vqgan_tensors(c);
    (void)rw::vision::lwm_vqgan_names(c);
    (void)c.describe();
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
  try {  // LWM's pickled vqgan file: every array in the input or in the tree's own storage, its size its shape's
    const rw::io::PickleTree tree = rw::io::read_pickle_arrays(bytes.data(), bytes.size(), "fuzz");
    std::vector<float> values;
    for (const rw::io::PickleArray& a : tree.arrays) {
      if (a.bytes != static_cast<uint64_t>(a.count()) * static_cast<uint64_t>(rw::io::numpy_dtype_size(a.dtype)))
        finding("pickle array '" + a.key_text() + "': its bytes do not match its shape and dtype");
      bool owned = false;
      for (const auto& o : tree.owned) {
        const auto* lo = reinterpret_cast<const uint8_t*>(o->data());
        owned = owned || (a.data >= lo && a.data + a.bytes <= lo + o->size());
      }
      if (!owned) check_inside(a.data, a.bytes, bytes, "pickle array '" + a.key_text() + "'");
      values.resize(static_cast<std::size_t>(a.count()));
      try {
        rw::io::pickle_array_to_f32(a, values.data());
      } catch (const rw::InputError& e) {  // an integer dtype
        rw::fuzz::refused(e);
      }
    }
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
  try {
    const std::vector<rw::io::JaxRecord> records = rw::io::parse_lwm_jax_stream(bytes.data(), bytes.size(), "fuzz");
    for (const auto& r : records) {
      if (!r.is_array) continue;
      uint64_t total = 0;
      for (const auto& [p, n] : r.array.pieces) {
        check_inside(p, n, bytes, "array '" + r.key_text() + "'");
        total += n;
      }
      if (total != static_cast<uint64_t>(r.array.count()) * static_cast<uint64_t>(rw::io::numpy_dtype_size(r.array.dtype)))
        finding("array '" + r.key_text() + "': its bytes do not match its shape and dtype");
    }
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
}

void tokenizer(const uint8_t* data, std::size_t size) {
  const rw::fuzz::TempFile model(data, size, ".model");
  try {
    const std::unique_ptr<rw::data::Tokenizer> t = rw::data::make_tokenizer("sentencepiece:" + model.path());
    const std::vector<int32_t> ids = t->encode("Ring attention: 1M tokens, \xc3\xbc\xe2\x82\xac \t\n end");
    for (const int32_t id : ids)
      if (id < 0 || id >= t->vocab_size()) finding("encode returned id " + std::to_string(id) + " outside the vocabulary");
    (void)t->decode(ids);
    std::vector<int32_t> all;
    for (int64_t id = 0; id < std::min<int64_t>(t->vocab_size(), 4096); ++id) all.push_back(static_cast<int32_t>(id));
    (void)t->decode(all);
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  rw::fuzz::init_mpi_once(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 6;
  ++data;
  --size;
  if (mode == 4) {
    formats(data, size);
    return 0;
  }
  if (mode == 5) {
    tokenizer(data, size);
    return 0;
  }
  const std::vector<std::string> parts = rw::fuzz::split_parts(data, size);
  switch (mode) {
    case 0: import_hf(parts); break;
    case 1: import_lwm_jax(parts); break;
    case 2: import_diffusers_vq(parts); break;
    default: import_lwm_vqgan(parts); break;
  }
  rw::fuzz::check_no_open_hdf5_objects("the importer");
  return 0;
}
