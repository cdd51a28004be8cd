// hf_export.cpp
#include "io/hf_export.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/float16.h"
#include "io/h5_file.h"
#include "io/hf_config.h"
#include "io/model_import.h"
#include "io/param_file_reader.h"
#include "io/safetensors.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

namespace fs = std::filesystem;

// Temporary files of one export: removed (also by a fatal error) unless all were renamed.
class TempFiles {
 public:
  ~TempFiles() {
    for (const auto& [tmp, final_path] : files_) {
      std::remove(tmp.c_str());
      remove_cleanup_path(tmp);
    }
  }
  std::string add(const fs::path& dir, const std::string& name) {
    const std::string tmp = (dir / ("." + name + ".tmp")).string();
    add_cleanup_path(tmp);
    files_.emplace_back(tmp, (dir / name).string());
    return tmp;
  }
  // Renames every file in order (the caller puts config.json last); then syncs the directory.
  void commit(const fs::path& dir) {
    for (const auto& [tmp, final_path] : files_)
      if (std::rename(tmp.c_str(), final_path.c_str()) != 0)
        throw InputError("cannot rename '" + tmp + "' to '" + final_path + "': " + std::strerror(errno));
    for (const auto& [tmp, final_path] : files_) remove_cleanup_path(tmp);
    files_.clear();
    sync_path(dir.string());
  }

 private:
  std::vector<std::pair<std::string, std::string>> files_;
};

// A file written with write(2), every error an InputError naming it (a full disk is not a bug).
class OutFile {
 public:
  explicit OutFile(const std::string& path) : path_(path) {
    fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw InputError("cannot create '" + path + "': " + std::strerror(errno));
  }
  ~OutFile() {
    if (fd_ >= 0) close(fd_);
  }
  void write_bytes(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw InputError("cannot write '" + path_ + "': " + std::strerror(errno));
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  void finish() {
    if (fsync(fd_) != 0 || close(fd_) != 0) {
      fd_ = -1;
      throw InputError("cannot write '" + path_ + "': " + std::strerror(errno));
    }
    fd_ = -1;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

void write_text_file(const std::string& path, const std::string& text) {
  OutFile f(path);
  f.write_bytes(text.data(), text.size());
  f.finish();
}

struct DtypeChoice {
  std::string safetensors, torch;  // "BF16", "bfloat16"
  int64_t bytes;
};

DtypeChoice choose_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return {"F32", "float32", 4};
  if (name == "bf16" || name == "bfloat16") return {"BF16", "bfloat16", 2};
  if (name == "fp16" || name == "float16") return {"F16", "float16", 2};
  throw InputError("unknown --dtype '" + name + "' (fp32, bf16 or fp16)");
}

bool is_weight_file(const std::string& name) {
  if (name == "model.safetensors" || name == "model.safetensors.index.json") return true;
  return name.rfind("model-", 0) == 0 && name.find("-of-") != std::string::npos && fs::path(name).extension() == ".safetensors";
}

}  // namespace

HfExportResult export_hf(const std::string& param_file, const std::string& dir_text, const HfExportOptions& options,
                         const std::function<void(int64_t, int64_t)>& progress) {
  HfExportResult result;
  HfModelConfig hf;
  const ParamFileReader reader(param_file);
  hf.llama = reader.model_config();
  const ImportedAttributes attrs = read_imported_attributes(param_file);
  hf.bos_token_id = attrs.bos_token_id;
  hf.eos_token_id = attrs.eos_token_id;
  int64_t seq_len = 0;
  if (options.max_position_embeddings > 0) {
    hf.max_position_embeddings = options.max_position_embeddings;
  } else if (attrs.max_position_embeddings > 0) {
    hf.max_position_embeddings = attrs.max_position_embeddings;
  } else if (reader.int_attribute("seq_len", &seq_len) && seq_len > 0) {
    hf.max_position_embeddings = seq_len;
    result.notes.push_back("max_position_embeddings " + std::to_string(seq_len) + ": the checkpoint's training seq_len");
  } else {
    hf.max_position_embeddings = 2048;
    result.notes.push_back("max_position_embeddings not recorded: 2048 (LlamaConfig's default; set --max-position-embeddings)");
  }
  std::string dtype_name = options.dtype;
  if (dtype_name.empty()) {
    dtype_name = attrs.torch_dtype.empty() ? "fp32" : attrs.torch_dtype;
    result.notes.push_back(attrs.torch_dtype.empty() ? "dtype float32 (the file records no source dtype)"
                                                     : "dtype " + attrs.torch_dtype + ": the dtype the model was imported from");
  }
  const DtypeChoice dtype = choose_dtype(dtype_name);
  result.dtype = dtype.torch;
  if (options.max_shard_bytes == 0) throw InputError("--max-shard-size must be positive");
  if (reader.has_link("vision"))
    result.notes.push_back("the /vision tables are not exported (LlamaForCausalLM has none)");

  // The directory: created if missing; one that already holds weights is refused.
  const fs::path dir(dir_text);
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw InputError("'" + dir_text + "' exists and is not a directory");
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (is_weight_file(e.path().filename().string()))
        throw InputError("'" + dir_text + "' already holds model weights (" + e.path().filename().string() +
                         "): remove them or choose another directory");
  } else if (!fs::create_directories(dir, ec) || ec) {
    throw InputError("cannot create directory '" + dir_text + "': " + ec.message());
  }

  // The layout: tensors in Hugging Face order, greedily packed into shards of at most the limit
  // (a tensor larger than the limit gets a shard of its own, as transformers does).
  std::vector<model::TensorSpec> specs;
  for (const auto& unit : model::parameter_units(hf.llama))
    for (const auto& t : unit.tensors) specs.push_back(t);
  std::vector<std::vector<SafetensorsEntry>> shards(1);
  uint64_t in_shard = 0;
  for (const auto& t : specs) {
    const uint64_t bytes = static_cast<uint64_t>(t.count()) * dtype.bytes;
    if (in_shard > 0 && in_shard + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    SafetensorsEntry e;
    e.name = t.name;
    e.dtype = dtype.safetensors;
    e.shape = t.shape;
    e.begin = in_shard;
    e.end = in_shard + bytes;
    shards.back().push_back(e);
    in_shard += bytes;
    result.tensor_bytes += bytes;
  }
  const std::size_t n_shards = shards.size();
  auto shard_name = [&](std::size_t s) {
    if (n_shards == 1) return std::string("model.safetensors");
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, n_shards);
    return std::string(name);
  };

  TempFiles temps;
  std::vector<float> values;
  std::vector<uint16_t> narrow;
  int64_t done = 0;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (std::size_t s = 0; s < n_shards; ++s) {
    OutFile out(temps.add(dir, shard_name(s)));
    const std::string header = make_safetensors_header(shards[s], {{"format", "pt"}});
    out.write_bytes(header.data(), header.size());
    for (const auto& e : shards[s]) {
      values = reader.read_tensor("/params/" + e.name, e.shape);
      if (dtype.bytes == 4) {
        out.write_bytes(values.data(), values.size() * 4);
      } else {
        narrow.resize(values.size());
        if (dtype.safetensors == "BF16")
          for (std::size_t i = 0; i < values.size(); ++i) narrow[i] = float_to_bf16(values[i]);
        else
          for (std::size_t i = 0; i < values.size(); ++i) narrow[i] = float_to_half(values[i]);
        out.write_bytes(narrow.data(), narrow.size() * 2);
      }
      weight_map[e.name] = shard_name(s);
      if (progress) progress(++done, static_cast<int64_t>(specs.size()));
    }
    out.finish();
    result.files.push_back(shard_name(s));
  }
  if (n_shards > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", result.tensor_bytes}};
    index["weight_map"] = weight_map;
    write_text_file(temps.add(dir, "model.safetensors.index.json"), index.dump(2) + "\n");
    result.files.push_back("model.safetensors.index.json");
  }
  const std::string generation = make_generation_config_json(hf);
  if (!generation.empty()) {
    write_text_file(temps.add(dir, "generation_config.json"), generation);
    result.files.push_back("generation_config.json");
  }
  write_text_file(temps.add(dir, "config.json"), make_hf_config_json(hf, dtype.torch));
  result.files.push_back("config.json");
  temps.commit(dir);
  return result;
}

void copy_file_atomically(const std::string& from, const std::string& dir, const std::string& name) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw InputError("cannot read '" + from + "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  TempFiles temps;
  write_text_file(temps.add(dir, name), bytes);
  temps.commit(dir);
}

}  // namespace rw::io
