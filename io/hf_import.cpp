// hf_import.cpp: open_hf_directory (model_import.h): a Hugging Face LLaMA directory as an
// ImportSource. Every shard is mapped and its header validated (safetensors.h); the tensor table
// is checked against the config (every name present once, nothing unknown, shapes, dtypes) before
// any data is read; writing converts one tensor at a time straight from the mapping.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "io/mapped_file.h"
#include "io/model_import.h"
#include "io/param_file_writer.h"
#include "io/safetensors.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

namespace fs = std::filesystem;

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read '" + path.string() + "'");
  std::string text(std::istreambuf_iterator<char>(in), {});
  if (in.bad()) throw InputError("cannot read '" + path.string() + "'");
  return text;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Older checkpoints saved RoPE's inverse frequencies as a buffer; they follow from rope_theta.
bool is_rotary_buffer(const std::string& name) {
  const std::string suffix = ".self_attn.rotary_emb.inv_freq";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class HfSource : public ImportSource {
 public:
  explicit HfSource(const std::string& dir);
  void write_tensors(ParamFileWriter& writer, const std::function<void(int64_t, int64_t)>& progress) const override;

 private:
  struct Located {
    std::size_t shard;
    SafetensorsEntry entry;
    SourceDtype dtype;
  };
  std::vector<MappedFile> shards_;
  std::vector<SafetensorsHeader> headers_;
  std::map<std::string, Located> tensors_;
  std::vector<model::TensorSpec> params_;  // parameter_units order
  bool copy_embedding_to_head_ = false;
};

HfSource::HfSource(const std::string& dir_text) {
  const fs::path dir(dir_text);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError("'" + dir_text + "' is not a directory (--from hf reads a model directory)");
  fs::path absolute = fs::absolute(dir, ec);
  description_ = "hf:" + (ec ? dir : absolute).lexically_normal().string();
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path, ec)) throw InputError("'" + dir_text + "' has no config.json");
  config_ = parse_hf_config(read_text_file(config_path), config_path.string());
  notes_ = config_.notes;

  // The weight files: an index naming shards, or one model.safetensors.
  const fs::path index_path = dir / "model.safetensors.index.json";
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  if (fs::exists(index_path, ec)) {
    weight_map = parse_safetensors_index(read_text_file(index_path), index_path.string());
    std::set<std::string> unique;
    for (const auto& [name, shard] : weight_map)
      if (unique.insert(shard).second) shard_names.push_back(shard);
  } else if (fs::exists(dir / "model.safetensors", ec)) {
    shard_names.push_back("model.safetensors");
  } else {
    bool has_pickle = false;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".bin" || e.path().extension() == ".pt" || e.path().extension() == ".pth") has_pickle = true;
    if (has_pickle)
      throw InputError("'" + dir_text + "' holds PyTorch pickle weights (*.bin), which ringworld does not read: convert them to "
                       "safetensors first (transformers: model.save_pretrained(DIR, safe_serialization=True))");
    throw InputError("'" + dir_text + "' has neither model.safetensors nor model.safetensors.index.json");
  }
  for (const auto& name : shard_names) {
    const fs::path path = dir / name;
    if (!fs::exists(path, ec))
      throw InputError("'" + index_path.string() + "' names shard '" + name + "', which does not exist");
    shards_.emplace_back(path.string());
    headers_.push_back(parse_safetensors(shards_.back().data(), shards_.back().size(), path.string()));
  }

  // The tensor table: each name once over all shards, in the shard the index says.
  for (std::size_t s = 0; s < headers_.size(); ++s)
    for (const auto& e : headers_[s].tensors) {
      const std::string where = "tensor '" + e.name + "' in '" + shards_[s].path() + "'";
      if (tensors_.count(e.name))
        throw InputError(where + " is also in '" + shards_[tensors_.at(e.name).shard].path() + "'");
      if (!weight_map.empty()) {
        const auto it = weight_map.find(e.name);
        if (it == weight_map.end()) throw InputError(where + " is not in '" + index_path.string() + "'");
        if (it->second != shard_names[s])
          throw InputError(where + ": '" + index_path.string() + "' places it in '" + it->second + "'");
      }
      SourceDtype dtype = SourceDtype::f32;
      if (e.dtype == "F16") dtype = SourceDtype::f16;
      else if (e.dtype == "BF16") dtype = SourceDtype::bf16;
      else if (e.dtype != "F32" && !is_rotary_buffer(e.name))
        throw InputError(where + " is " + e.dtype + ": only F32, F16 and BF16 tensors are imported");
      tensors_[e.name] = Located{s, e, dtype};
    }
  for (const auto& [name, shard] : weight_map)
    if (!tensors_.count(name))
      throw InputError("'" + index_path.string() + "' places tensor '" + name + "' in '" + shard + "', which does not have it");

  // Against the config: every parameter present with its shape; nothing else.
  std::set<std::string> expected;
  for (const auto& unit : model::parameter_units(config_.llama))
    for (const auto& t : unit.tensors) {
      params_.push_back(t);
      expected.insert(t.name);
    }
  bool ignored_rotary = false;
  for (const auto& [name, located] : tensors_) {
    if (expected.count(name)) continue;
    if (is_rotary_buffer(name)) {
      ignored_rotary = true;
      continue;
    }
    throw InputError("tensor '" + name + "' in '" + shards_[located.shard].path() +
                     "' is not a parameter of LlamaForCausalLM with this config.json (" + config_.llama.describe() + ")");
  }
  if (ignored_rotary) notes_.push_back("rotary_emb.inv_freq buffers ignored (they follow from rope_theta)");
  for (const auto& t : params_) {
    const auto it = tensors_.find(t.name);
    if (it == tensors_.end()) {
      if (t.name == "lm_head.weight" && config_.tie_word_embeddings) {
        copy_embedding_to_head_ = true;
        continue;
      }
      throw InputError("'" + dir_text + "' has no tensor '" + t.name + "' (config.json: " + config_.llama.describe() + ")");
    }
    if (it->second.entry.shape != t.shape)
      throw InputError("tensor '" + t.name + "' in '" + shards_[it->second.shard].path() + "' has shape " +
                       shape_text(it->second.entry.shape) + ", config.json implies " + shape_text(t.shape));
  }
  if (config_.tie_word_embeddings)
    notes_.push_back(copy_embedding_to_head_
                         ? "tie_word_embeddings: lm_head.weight written as a copy of model.embed_tokens.weight (ringworld's "
                           "head is untied: training updates them separately; export writes both)"
                         : "tie_word_embeddings is true but the files hold an lm_head.weight: imported as is (untied)");
  if (config_.torch_dtype.empty()) {
    // The export default: the dtype the weights came in.
    const std::string d = tensors_.at(params_.front().name).entry.dtype;
    config_.torch_dtype = d == "BF16" ? "bfloat16" : d == "F16" ? "float16" : "float32";
  }
}

void HfSource::write_tensors(ParamFileWriter& writer, const std::function<void(int64_t, int64_t)>& progress) const {
  std::vector<float> buffer;
  int64_t done = 0;
  const int64_t total = static_cast<int64_t>(params_.size());
  for (const auto& t : params_) {
    const std::string& from = t.name == "lm_head.weight" && copy_embedding_to_head_ ? "model.embed_tokens.weight" : t.name;
    const Located& src = tensors_.at(from);
    const MappedFile& file = shards_[src.shard];
    const uint8_t* begin = file.data() + headers_[src.shard].data_start + src.entry.begin;
    buffer.resize(static_cast<std::size_t>(t.count()));
    convert_to_f32(begin, src.dtype, t.count(), buffer.data());
    writer.write_param(t.name, buffer.data());
    file.release(begin, begin + (src.entry.end - src.entry.begin));
    if (progress) progress(++done, total);
  }
}

}  // namespace

std::unique_ptr<ImportSource> open_hf_directory(const std::string& dir) { return std::make_unique<HfSource>(dir); }

}  // namespace rw::io
