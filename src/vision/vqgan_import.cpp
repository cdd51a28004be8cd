// vqgan_import.cpp: see vqgan_import.h.
#include "src/vision/vqgan_import.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <set>

#include "io/json_text.h"
#include "io/lwm_jax_stream.h"
#include "io/mapped_file.h"
#include "io/model_import.h"
#include "io/pickle_reader.h"
#include "io/safetensors.h"
#include "src/common/input_error.h"

namespace rw::vision {
namespace {

namespace fs = std::filesystem;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read '" + path.string() + "'");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string absolute_text(const std::string& path) {
  std::error_code ec;
  const fs::path a = fs::absolute(path, ec);
  return (ec ? fs::path(path) : a).lexically_normal().string();
}

// Element type of a source array ("F32"/"float32", ...), or throws naming the tensor.
io::SourceDtype source_dtype(const std::string& dtype, const std::string& what) {
  if (dtype == "F32" || dtype == "float32") return io::SourceDtype::f32;
  if (dtype == "F16" || dtype == "float16") return io::SourceDtype::f16;
  if (dtype == "BF16" || dtype == "bfloat16") return io::SourceDtype::bf16;
  throw InputError(what + " has dtype " + dtype + " (float32, float16 or bfloat16 expected)");
}

// ---- diffusers ---------------------------------------------------------------------------------

class DiffusersSource : public VqganSource {
 public:
  DiffusersSource(const std::string& dir, int64_t image_size);
  void fetch(const VqganTensor& tensor, float* out) const override;

 private:
  std::unique_ptr<io::MappedFile> file_;
  io::SafetensorsHeader header_;
};

DiffusersSource::DiffusersSource(const std::string& dir, int64_t image_size) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw InputError("'" + dir + "' is not a directory (--from diffusers-vq reads a VQModel directory)");
  description_ = "diffusers-vq:" + absolute_text(dir);
  const fs::path config_path = fs::path(dir) / "config.json";
  if (!fs::exists(config_path, ec)) throw InputError("'" + dir + "' has no config.json");
  config_ = parse_diffusers_vq_config(read_text_file(config_path), config_path.string(), image_size, &notes_);
  const fs::path weights = fs::path(dir) / "diffusion_pytorch_model.safetensors";
  if (!fs::exists(weights, ec))
    throw InputError("'" + dir + "' has no diffusion_pytorch_model.safetensors (only safetensors weights are read)");
  file_ = std::make_unique<io::MappedFile>(weights.string());
  header_ = io::parse_safetensors(file_->data(), file_->size(), weights.string());
  std::set<std::string> expected;
  for (const VqganTensor& t : vqgan_tensors(config_)) {
    expected.insert(t.name);
    const io::SafetensorsEntry* e = header_.find(t.name);
    const std::string what = "'" + weights.string() + "': tensor " + t.name;
    if (!e) throw InputError(what + " is missing (" + config_.describe() + ")");
    source_dtype(e->dtype, what);
    if (e->shape != t.shape)
      throw InputError(what + " has shape " + shape_text(e->shape) + ", the config implies " + shape_text(t.shape));
  }
  for (const io::SafetensorsEntry& e : header_.tensors)
    if (!expected.count(e.name))
      throw InputError("'" + weights.string() + "': tensor " + e.name + " is not part of " + config_.describe() +
                       " (attention blocks and other extras are not supported)");
  std::set<std::string> dtypes;
  for (const io::SafetensorsEntry& e : header_.tensors) dtypes.insert(e.dtype);
  for (const std::string& d : dtypes)
    if (d != "F32") notes_.push_back(d + " tensors converted to float32 (exactly)");
}

void DiffusersSource::fetch(const VqganTensor& tensor, float* out) const {
  const io::SafetensorsEntry* e = header_.find(tensor.name);
  const uint8_t* begin = file_->data() + header_.data_start + e->begin;
  io::convert_to_f32(begin, source_dtype(e->dtype, tensor.name), tensor.count(), out);
  file_->release(begin, begin + (e->end - e->begin));
}

// ---- LWM (flax) --------------------------------------------------------------------------------

class LwmSource : public VqganSource {
 public:
  LwmSource(const std::string& file, const VqganConfig& config);
  void fetch(const VqganTensor& tensor, float* out) const override;

 private:
  std::unique_ptr<io::MappedFile> file_;
  std::vector<io::JaxRecord> records_;    // the msgpack form
  io::PickleTree pickle_;                 // the pickle form
  std::vector<std::pair<std::string, io::JaxArray>> leaves_;  // flax key path ("encoder/Conv_0/kernel"), array
  std::map<std::string, std::size_t> by_tensor_;             // diffusers name -> leaf
};

// The flax array's shape for a tensor of PyTorch shape: convolutions [kh, kw, in, out].
std::vector<int64_t> flax_shape(const VqganTensor& t) {
  if (t.shape.size() == 4) return {t.shape[2], t.shape[3], t.shape[1], t.shape[0]};
  return t.shape;
}

// "float64" (LWM's pickle may hold it) or what source_dtype() accepts.
void check_lwm_dtype(const std::string& dtype, const std::string& what) {
  if (dtype != "float64") source_dtype(dtype, what + " (float64 also)");
}

LwmSource::LwmSource(const std::string& file, const VqganConfig& config) {
  config_ = config;
  config_.validate();
  description_ = "lwm-vqgan:" + absolute_text(file);
  file_ = std::make_unique<io::MappedFile>(file);
  if (io::looks_like_pickle(file_->data(), file_->size())) {
    // LWM's own form: what lwm/vqgan.py's pickle.load reads (a dict tree of numpy arrays).
    pickle_ = io::read_pickle_arrays(file_->data(), file_->size(), file);
    for (const io::PickleArray& a : pickle_.arrays) {
      io::JaxArray j;
      j.shape = a.shape;
      j.dtype = a.dtype;
      j.pieces.emplace_back(a.data, a.bytes);
      leaves_.emplace_back(a.key_text(), std::move(j));
    }
    notes_.push_back("read as a Python pickle (restricted: numpy arrays only, nothing executed)");
  } else {
    records_ = io::parse_lwm_jax_stream(file_->data(), file_->size(), file);
    for (const io::JaxRecord& r : records_) {
      if (!r.is_array) throw InputError("'" + file + "': " + r.key_text() + " is " + r.other + ", not an array");
      leaves_.emplace_back(r.key_text(), r.array);
    }
  }
  std::map<std::string, std::size_t> by_key;
  for (std::size_t i = 0; i < leaves_.size(); ++i) {
    std::string text = leaves_[i].first;
    if (text.rfind("params/", 0) == 0) text.erase(0, 7);  // a tree saved with its 'params' root
    if (!by_key.emplace(text, i).second) throw InputError("'" + file + "': " + text + " appears twice");
  }
  std::set<std::string> used;
  std::map<std::string, VqganTensor> tensors;
  for (const VqganTensor& t : vqgan_tensors(config_)) tensors[t.name] = t;
  std::set<std::string> dtypes;
  for (const auto& [name, key] : lwm_vqgan_names(config_)) {
    const auto it = by_key.find(key);
    const std::string what = "'" + file + "': " + key + " (" + name + ")";
    if (it == by_key.end()) throw InputError(what + " is missing (" + config_.describe() + ")");
    const io::JaxArray& a = leaves_[it->second].second;
    check_lwm_dtype(a.dtype, what);
    dtypes.insert(a.dtype);
    const std::vector<int64_t> want = flax_shape(tensors[name]);
    if (a.shape != want)
      throw InputError(what + " has shape " + shape_text(a.shape) + ", the config implies " + shape_text(want));
    by_tensor_[name] = it->second;
    used.insert(key);
  }
  for (const auto& [key, index] : by_key)
    if (!used.count(key))
      throw InputError("'" + file + "': " + key + " is not a parameter of " + config_.describe() +
                       " (attention blocks and other extras are not supported; is --config right?)");
  for (const std::string& d : dtypes)
    if (d != "float32") notes_.push_back(d + " arrays converted to float32" + (d == "float64" ? " (rounded to nearest)" : " (exactly)"));
}

void LwmSource::fetch(const VqganTensor& tensor, float* out) const {
  const io::JaxArray& a = leaves_[by_tensor_.at(tensor.name)].second;
  std::vector<float> flat(static_cast<std::size_t>(tensor.count()));
  int64_t done = 0;
  for (const auto& [ptr, bytes] : a.pieces) {
    io::PickleArray piece;  // one contiguous run of elements
    piece.dtype = a.dtype;
    piece.data = ptr;
    piece.bytes = bytes;
    piece.shape = {static_cast<int64_t>(bytes) / io::numpy_dtype_size(a.dtype)};
    io::pickle_array_to_f32(piece, flat.data() + done);
    done += piece.shape[0];
  }
  if (tensor.shape.size() != 4) {
    std::copy(flat.begin(), flat.end(), out);
    return;
  }
  // HWIO -> OIHW.
  const int64_t o = tensor.shape[0], in = tensor.shape[1], kh = tensor.shape[2], kw = tensor.shape[3];
  for (int64_t y = 0; y < kh; ++y)
    for (int64_t x = 0; x < kw; ++x)
      for (int64_t i = 0; i < in; ++i)
        for (int64_t j = 0; j < o; ++j) out[((j * in + i) * kh + y) * kw + x] = flat[static_cast<std::size_t>(((y * kw + x) * in + i) * o + j)];
}

int64_t json_int(const nlohmann::json& j, const char* key, const std::string& file, bool required, int64_t fallback) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) throw InputError("'" + file + "': " + key + " is missing");
    return fallback;
  }
  if (!j[key].is_number_integer()) throw InputError("'" + file + "': " + key + " is not an integer");
  return j[key].get<int64_t>();
}

}  // namespace

VqganConfig parse_diffusers_vq_config(const std::string& text, const std::string& file, int64_t image_size,
                                      std::vector<std::string>* notes) {
  const nlohmann::json j = io::parse_json_object(text, "'" + file + "'", 8);
  VqganConfig c;
  c.image_size = image_size;
  if (j.contains("_class_name") && j["_class_name"] != "VQModel")
    throw InputError("'" + file + "': _class_name is " + j["_class_name"].dump() + ", not VQModel");
  if (!j.contains("block_out_channels") || !j["block_out_channels"].is_array() || j["block_out_channels"].empty())
    throw InputError("'" + file + "': block_out_channels (a non-empty list of integers) is missing");
  std::vector<int64_t> widths;
  for (const auto& w : j["block_out_channels"]) {
    if (!w.is_number_integer() || w.get<int64_t>() < 1)
      throw InputError("'" + file + "': block_out_channels holds " + w.dump() + " (positive integers expected)");
    widths.push_back(w.get<int64_t>());
  }
  c.base_channels = std::accumulate(widths.begin(), widths.end(), int64_t(0), [](int64_t a, int64_t b) { return std::gcd(a, b); });
  c.channel_multipliers.clear();
  for (int64_t w : widths) c.channel_multipliers.push_back(w / c.base_channels);
  const std::size_t levels = widths.size();
  auto block_types = [&](const char* key, const char* expected) {
    if (!j.contains(key)) return;
    if (!j[key].is_array() || j[key].size() != levels)
      throw InputError("'" + file + "': " + key + " must list " + std::to_string(levels) + " blocks (one per block_out_channels)");
    for (const auto& b : j[key])
      if (b != expected)
        throw InputError("'" + file + "': " + key + " holds " + b.dump() + "; only " + expected + " is supported (no attention)");
  };
  block_types("down_block_types", "DownEncoderBlock2D");
  block_types("up_block_types", "UpDecoderBlock2D");
  auto require_string = [&](const char* key, const char* value) {
    if (j.contains(key) && j[key] != value)
      throw InputError("'" + file + "': " + key + " is " + j[key].dump() + "; only \"" + value + "\" is supported");
  };
  require_string("act_fn", "silu");
  require_string("norm_type", "group");
  if (!j.contains("mid_block_add_attention") || j["mid_block_add_attention"] != false)
    throw InputError("'" + file + "': mid_block_add_attention must be false (diffusers' default is true; the "
                     "mid-block attention of other VQ models is not supported)");
  const int64_t layers = json_int(j, "layers_per_block", file, true, 0);
  c.encoder_res_blocks = layers;
  c.decoder_res_blocks = layers + 1;
  c.mid_res_blocks = 2;
  c.in_channels = json_int(j, "in_channels", file, false, 3);
  c.out_channels = json_int(j, "out_channels", file, false, 3);
  c.latent_channels = json_int(j, "latent_channels", file, true, 0);
  c.codebook_size = json_int(j, "num_vq_embeddings", file, true, 0);
  c.codebook_dim = json_int(j, "vq_embed_dim", file, false, c.latent_channels);
  c.norm_groups = json_int(j, "norm_num_groups", file, false, 32);
  c.norm_eps = 1e-6;  // diffusers' Encoder and Decoder fix it
  if (notes) {
    if (!j.contains("vq_embed_dim") || j["vq_embed_dim"].is_null()) notes->push_back("vq_embed_dim: latent_channels");
    notes->push_back("image size " + std::to_string(image_size) + " (not in config.json; --image-size sets it)");
  }
  try {
    c.validate();
  } catch (const InputError& e) {
    throw InputError("'" + file + "': " + e.what());
  }
  return c;
}

std::unique_ptr<VqganSource> open_diffusers_vq(const std::string& dir, int64_t image_size) {
  return std::make_unique<DiffusersSource>(dir, image_size);
}

std::unique_ptr<VqganSource> open_lwm_vqgan(const std::string& file, const VqganConfig& config) {
  return std::make_unique<LwmSource>(file, config);
}

std::vector<std::pair<std::string, std::string>> lwm_vqgan_names(const VqganConfig& config) {
  // Module prefixes, diffusers -> flax.
  std::map<std::string, std::string> modules;
  auto resnet = [&](const std::string& d, const std::string& f) {
    modules[d + ".norm1"] = f + "/GroupNorm_0";
    modules[d + ".conv1"] = f + "/Conv_0";
    modules[d + ".norm2"] = f + "/GroupNorm_1";
    modules[d + ".conv2"] = f + "/Conv_1";
    modules[d + ".conv_shortcut"] = f + "/Conv_2";
  };
  const int64_t levels = config.levels();
  modules["encoder.conv_in"] = "encoder/Conv_0";
  for (int64_t i = 0; i < levels; ++i) {
    const std::string d = "encoder.down_blocks." + std::to_string(i), f = "encoder/DownsamplingBlock_" + std::to_string(i);
    for (int64_t m = 0; m < config.encoder_res_blocks; ++m)
      resnet(d + ".resnets." + std::to_string(m), f + "/ResnetBlock_" + std::to_string(m));
    modules[d + ".downsamplers.0.conv"] = f + "/Downsample_0/Conv_0";
  }
  for (const char* part : {"encoder", "decoder"})
    for (int64_t m = 0; m < config.mid_res_blocks; ++m)
      resnet(std::string(part) + ".mid_block.resnets." + std::to_string(m),
             std::string(part) + "/MidBlock_0/ResnetBlock_" + std::to_string(m));
  modules["encoder.conv_norm_out"] = "encoder/GroupNorm_0";
  modules["encoder.conv_out"] = "encoder/Conv_1";
  modules["quant_conv"] = "quant_conv";
  modules["post_quant_conv"] = "post_quant_conv";
  modules["decoder.conv_in"] = "decoder/Conv_0";
  for (int64_t k = 0; k < levels; ++k) {  // flax creates UpsamplingBlock_0 for the deepest level, as diffusers' up_blocks.0
    const std::string d = "decoder.up_blocks." + std::to_string(k), f = "decoder/UpsamplingBlock_" + std::to_string(k);
    for (int64_t m = 0; m < config.decoder_res_blocks; ++m)
      resnet(d + ".resnets." + std::to_string(m), f + "/ResnetBlock_" + std::to_string(m));
    modules[d + ".upsamplers.0.conv"] = f + "/Upsample_0/Conv_0";
  }
  modules["decoder.conv_norm_out"] = "decoder/GroupNorm_0";
  modules["decoder.conv_out"] = "decoder/Conv_1";

  std::vector<std::pair<std::string, std::string>> names;
  for (const VqganTensor& t : vqgan_tensors(config)) {
    if (t.name == "quantize.embedding.weight") {
      names.emplace_back(t.name, "quantize/embeddings");
      continue;
    }
    const std::size_t dot = t.name.rfind('.');
    const std::string module = t.name.substr(0, dot), param = t.name.substr(dot + 1);
    const std::string flax = modules.at(module);
    const bool is_norm = flax.find("GroupNorm_") != std::string::npos;
    names.emplace_back(t.name, flax + "/" + (param == "bias" ? "bias" : is_norm ? "scale" : "kernel"));
  }
  return names;
}

}  // namespace rw::vision
