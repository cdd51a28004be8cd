// lwm_jax_import.cpp: open_lwm_jax (lwm_jax_import.h). The stream is mapped and indexed
// (zero-copy views), every key classified and every shape checked against the config before
// anything is written; writing converts one layer tensor at a time.
#include "io/lwm_jax_import.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "io/json_text.h"
#include "io/lwm_jax_stream.h"
#include "io/mapped_file.h"
#include "io/param_file_writer.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

using model::LayerTensor;

// The per-layer keys under transformer/h/N/ (or stacked under transformer/h/scan_decoder/) and
// the Hugging Face tensor each becomes.
struct LayerKey {
  const char* path;
  LayerTensor tensor;
  bool kernel;  // a Flax (in, out) kernel: transposed; else a norm vector
};
constexpr LayerKey kLayerKeys[] = {
    {"attention/wq/kernel", model::kQProj, true},       {"attention/wk/kernel", model::kKProj, true},
    {"attention/wv/kernel", model::kVProj, true},       {"attention/wo/kernel", model::kOProj, true},
    {"feed_forward/w1/kernel", model::kGateProj, true}, {"feed_forward/w2/kernel", model::kDownProj, true},
    {"feed_forward/w3/kernel", model::kUpProj, true},   {"attention_norm/kernel", model::kInputNorm, false},
    {"ffn_norm/kernel", model::kPostNorm, false}};
constexpr int kLayerKeyCount = sizeof(kLayerKeys) / sizeof(kLayerKeys[0]);
const char* const kScanName = "scan_decoder";

std::string dims_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SourceDtype source_dtype(const std::string& numpy) {
  if (numpy == "float32") return SourceDtype::f32;
  if (numpy == "float16") return SourceDtype::f16;
  return SourceDtype::bf16;  // validated before: bfloat16
}

int64_t element_size(const JaxArray& a) { return numpy_dtype_size(a.dtype); }

// Elements [begin, begin + n) of the flat array, converted to float32 (across chunk boundaries).
void read_flat(const JaxArray& a, int64_t begin, int64_t n, float* dst) {
  const int64_t size = element_size(a);
  const SourceDtype dtype = source_dtype(a.dtype);
  int64_t piece_start = 0;  // element index of the current piece's first element
  for (const auto& [data, bytes] : a.pieces) {
    const int64_t piece_count = static_cast<int64_t>(bytes) / size;
    const int64_t lo = std::max(begin, piece_start), hi = std::min(begin + n, piece_start + piece_count);
    if (hi > lo) convert_to_f32(data + (lo - piece_start) * size, dtype, hi - lo, dst + (lo - begin));
    piece_start += piece_count;
    if (piece_start >= begin + n) return;
  }
}

// (rows, cols) row-major -> (cols, rows), in cache-sized blocks.
void transpose(const float* in, int64_t rows, int64_t cols, float* out) {
  constexpr int64_t kBlock = 64;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock)
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const int64_t r1 = std::min(rows, r0 + kBlock), c1 = std::min(cols, c0 + kBlock);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) out[c * rows + r] = in[r * cols + c];
    }
}

class LwmSource : public ImportSource {
 public:
  LwmSource(const std::string& file_spec, const LwmModelSpec& spec);
  void write_tensors(ParamFileWriter& writer, const std::function<void(int64_t, int64_t)>& progress) const override;

 private:
  const JaxArray* find(const std::string& key) const {
    const auto it = arrays_.find(key);
    return it == arrays_.end() ? nullptr : it->second;
  }
  // Layer l's tensor of a layer key, in Flax layout ((in, out) or (hidden)), as float32.
  void read_layer(int k, int64_t l, float* dst) const;
  void release(const JaxArray& a) const {
    for (const auto& [data, bytes] : a.pieces) file_->release(data, data + bytes);
  }

  std::string path_;
  std::unique_ptr<MappedFile> file_;
  std::vector<JaxRecord> records_;
  std::map<std::string, const JaxArray*> arrays_;  // key path (prefix removed) -> array
  bool stacked_ = false;
  int scan_axis_ = 0;
  std::vector<std::vector<int64_t>> flax_shapes_;  // per layer key: the per-layer Flax shape
  int64_t vision_vocab_ = 0;
};

LwmSource::LwmSource(const std::string& file_spec, const LwmModelSpec& spec) {
  path_ = file_spec;
  for (const char* prefix : {"params::", "trainstate_params::", "trainstate::"})
    if (path_.rfind(prefix, 0) == 0) path_ = path_.substr(std::string(prefix).size());
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(path_, ec);
  description_ = "lwm-jax:" + (ec ? std::filesystem::path(path_) : absolute).lexically_normal().string();
  file_ = std::make_unique<MappedFile>(path_);
  records_ = parse_lwm_jax_stream(file_->data(), file_->size(), path_);
  const std::string where = "LWM JAX file '" + path_ + "'";

  // A train state keeps the parameters under ("params", "params"); a params file has no prefix.
  std::size_t strip = 0;
  for (const auto& r : records_)
    if (r.key.size() > 2 && r.key[0] == "params" && r.key[1] == "params") strip = 2;
  if (strip == 0 && std::all_of(records_.begin(), records_.end(), [](const JaxRecord& r) { return r.key.size() > 1 && r.key[0] == "params"; }))
    strip = 1;
  int64_t skipped = 0;
  for (const auto& r : records_) {
    if (strip == 2 && !(r.key.size() > 2 && r.key[0] == "params" && r.key[1] == "params")) {
      ++skipped;  // optimizer state, step: not parameters
      continue;
    }
    std::string key;
    for (std::size_t i = strip; i < r.key.size(); ++i) key += (i > strip ? "/" : "") + r.key[i];
    if (!r.is_array)
      throw InputError(where + ": key '" + r.key_text() + "' (byte " + std::to_string(r.offset) + ") is " + r.other +
                       ", not an array");
    if (!arrays_.emplace(key, &r.array).second) throw InputError(where + ": key '" + r.key_text() + "' appears twice");
  }
  if (strip == 2) notes_.push_back("a train state: parameters read from params/params/..., " + std::to_string(skipped) + " other entries skipped");

  // Classify every key; refuse what an LWM LLaMA does not have.
  std::map<int64_t, int> layer_keys_seen;  // layer -> number of its keys
  int stacked_seen = 0;
  for (const auto& [key, array] : arrays_) {
    if (key == "transformer/wte/embedding" || key == "transformer/ln_f/kernel" || key == "lm_head/kernel" ||
        key == "transformer/vte/embedding" || key == "vision_head/kernel")
      continue;
    const std::string h = "transformer/h/";
    bool known = false;
    if (key.rfind(h, 0) == 0) {
      const std::size_t slash = key.find('/', h.size());
      const std::string layer = key.substr(h.size(), slash == std::string::npos ? std::string::npos : slash - h.size());
      const std::string rest = slash == std::string::npos ? "" : key.substr(slash + 1);
      for (const auto& k : kLayerKeys) known = known || rest == k.path;
      const bool digits = !layer.empty() && layer.size() <= 6 && std::all_of(layer.begin(), layer.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      if (known && layer == kScanName) ++stacked_seen;
      else if (known && digits) ++layer_keys_seen[std::stoll(layer)];
      else known = false;
    }
    if (!known) throw InputError(where + ": key '" + key + "' is not part of an LWM LLaMA model");
  }
  for (const char* key : {"transformer/wte/embedding", "transformer/ln_f/kernel", "lm_head/kernel"})
    if (!find(key)) throw InputError(where + " has no key '" + std::string(key) + "'");
  if (stacked_seen && !layer_keys_seen.empty())
    throw InputError(where + " has both stacked (transformer/h/scan_decoder) and per-layer (transformer/h/N) keys");
  stacked_ = stacked_seen > 0;
  if (!stacked_ && layer_keys_seen.empty()) throw InputError(where + " has no layers (transformer/h/...)");
  auto layer_key = [&](int k, int64_t l) {
    return "transformer/h/" + (stacked_ ? std::string(kScanName) : std::to_string(l)) + "/" + kLayerKeys[k].path;
  };
  if (stacked_) {
    for (int k = 0; k < kLayerKeyCount; ++k)
      if (!find(layer_key(k, 0))) throw InputError(where + " has no key '" + layer_key(k, 0) + "'");
  } else {
    int64_t expected_layer = 0;
    for (const auto& [l, n] : layer_keys_seen) {
      if (l != expected_layer) throw InputError(where + " has no layer " + std::to_string(expected_layer) + " (transformer/h/" + std::to_string(expected_layer) + "/...)");
      for (int k = 0; k < kLayerKeyCount; ++k)
        if (!find(layer_key(k, l))) throw InputError(where + " has no key '" + layer_key(k, l) + "'");
      ++expected_layer;
    }
  }

  // What the shapes show.
  const JaxArray& wte = *find("transformer/wte/embedding");
  if (wte.shape.size() != 2) throw InputError(where + ": transformer/wte/embedding has shape " + dims_text(wte.shape) + ", not 2-D");
  const int64_t vocab = wte.shape[0], hidden = wte.shape[1];
  const JaxArray& norm0 = *find(layer_key(7, 0));  // attention_norm
  const JaxArray& w1 = *find(layer_key(4, 0));
  const JaxArray& wk = *find(layer_key(1, 0));
  int64_t layers = static_cast<int64_t>(layer_keys_seen.size());
  if (stacked_) {
    if (norm0.shape.size() != 2) throw InputError(where + ": stacked key '" + layer_key(7, 0) + "' has shape " + dims_text(norm0.shape) + ", not [layers, hidden] or [hidden, layers]");
    const bool axis0 = norm0.shape[1] == hidden, axis1 = norm0.shape[0] == hidden;
    if (spec.scan_axis) {
      scan_axis_ = static_cast<int>(*spec.scan_axis);
      if (scan_axis_ != 0 && scan_axis_ != 1) throw InputError("param_scan_axis must be 0 or 1 (" + spec.origin + ")");
    } else if (axis0 != axis1) {
      scan_axis_ = axis0 ? 0 : 1;
    } else {
      scan_axis_ = 0;
      if (axis0) notes_.push_back("layers stacked: the layer axis cannot be told from the shapes (layers == hidden): param_scan_axis 0 (LWM's default) assumed");
    }
    layers = norm0.shape[scan_axis_ == 0 ? 0 : 1];
    notes_.push_back("layers stacked by nn.scan (transformer/h/scan_decoder, layer axis " + std::to_string(scan_axis_) + ")");
  }
  auto per_layer_shape = [&](const JaxArray& a) {
    std::vector<int64_t> s = a.shape;
    if (stacked_ && s.size() > static_cast<std::size_t>(scan_axis_)) s.erase(s.begin() + scan_axis_);
    return s;
  };
  const std::vector<int64_t> w1_shape = per_layer_shape(w1), wk_shape = per_layer_shape(wk);
  if (w1_shape.size() != 2) throw InputError(where + ": '" + layer_key(4, 0) + "' has shape " + dims_text(w1.shape) + ", not a (hidden, intermediate) kernel");
  if (wk_shape.size() != 2) throw InputError(where + ": '" + layer_key(1, 0) + "' has shape " + dims_text(wk.shape) + ", not a (hidden, kv width) kernel");
  const int64_t intermediate = w1_shape[1], kv_width = wk_shape[1];

  // The config: the spec where given (checked against the shapes), else inferred or defaulted.
  model::LlamaConfig& c = config_.llama;
  std::vector<std::string> inferred;
  auto shape_field = [&](const char* name, const std::optional<int64_t>& given, int64_t seen, const std::string& seen_in) {
    if (given && *given != seen)
      throw InputError(spec.origin + " gives " + name + " " + std::to_string(*given) + ", but " + seen_in + " in '" + path_ +
                       "' shows " + std::to_string(seen));
    if (!given) inferred.push_back(std::string(name) + " " + std::to_string(seen));
    return seen;
  };
  c.vocab_size = shape_field("vocab_size", spec.vocab_size, vocab, "transformer/wte/embedding " + dims_text(wte.shape));
  c.hidden_size = shape_field("hidden_size", spec.hidden_size, hidden, "transformer/wte/embedding " + dims_text(wte.shape));
  c.intermediate_size = shape_field("intermediate_size", spec.intermediate_size, intermediate, layer_key(4, 0) + " " + dims_text(w1.shape));
  c.num_hidden_layers = shape_field("num_hidden_layers", spec.num_hidden_layers, layers,
                                    stacked_ ? layer_key(7, 0) + " " + dims_text(norm0.shape) : std::string("the transformer/h/N keys"));
  if (!spec.num_attention_heads)
    throw InputError("num_attention_heads is not in '" + path_ + "' (the head size does not show in the shapes): give it with "
                     "--config lwm-7b or a config file");
  c.num_attention_heads = *spec.num_attention_heads;
  if (c.num_attention_heads <= 0 || hidden % c.num_attention_heads != 0)
    throw InputError(spec.origin + ": num_attention_heads " + std::to_string(c.num_attention_heads) + " does not divide hidden_size " + std::to_string(hidden));
  const int64_t head_dim = hidden / c.num_attention_heads;
  if (kv_width % head_dim != 0)
    throw InputError("'" + layer_key(1, 0) + "' in '" + path_ + "' has width " + std::to_string(kv_width) + ", not a multiple of head_dim " + std::to_string(head_dim));
  c.num_key_value_heads = shape_field("num_key_value_heads", spec.num_key_value_heads, kv_width / head_dim,
                                      layer_key(1, 0) + " " + dims_text(wk.shape));
  // A vision model (LWM's dual vocabulary): both vision tables or neither.
  const JaxArray* vte = find("transformer/vte/embedding");
  const JaxArray* vision_head = find("vision_head/kernel");
  if (!vte != !vision_head) throw InputError(where + " has only one of transformer/vte/embedding and vision_head/kernel");
  if (vte) {
    if (vte->shape.size() != 2) throw InputError(where + ": 'transformer/vte/embedding' has shape " + dims_text(vte->shape) + ", not [vision vocab, hidden]");
    c.vision_vocab_size = shape_field("vision_vocab_size", spec.vision_vocab_size, vte->shape[0],
                                      "transformer/vte/embedding " + dims_text(vte->shape));
  } else if (spec.vision_vocab_size.value_or(0) != 0) {
    throw InputError(spec.origin + " gives vision_vocab_size " + std::to_string(*spec.vision_vocab_size) + ", but '" + path_ +
                     "' has no transformer/vte/embedding (a text model)");
  }
  auto real_field = [&](const char* name, const std::optional<double>& given, double fallback) {
    if (given) return *given;
    notes_.push_back(std::string(name) + " not given: " + std::to_string(fallback) + " (LWM's LLaMAConfig default)");
    return fallback;
  };
  c.rms_norm_eps = real_field("rms_norm_eps", spec.rms_norm_eps, 1e-6);
  c.rope_theta = real_field("rope_theta", spec.rope_theta, 10000.0);
  if (spec.max_position_embeddings) {
    config_.max_position_embeddings = *spec.max_position_embeddings;
  } else {
    config_.max_position_embeddings = 4096;
    notes_.push_back("max_position_embeddings not given: 4096 (LWM's LLaMAConfig default)");
  }
  config_.bos_token_id = spec.bos_token_id.value_or(-1);
  config_.eos_token_id = spec.eos_token_id.value_or(-1);
  if (!inferred.empty()) {
    std::string text = "inferred from the shapes:";
    for (std::size_t i = 0; i < inferred.size(); ++i) text += (i ? ", " : " ") + inferred[i];
    notes_.push_back(text);
  }
  try {
    c.validate();
  } catch (const InputError& e) {
    throw InputError(spec.origin + ": " + e.what());
  }

  // Every array: its exact shape and a float dtype.
  const auto units = model::parameter_units(c);
  for (int k = 0; k < kLayerKeyCount; ++k) {
    std::vector<int64_t> s = units[1].tensors[kLayerKeys[k].tensor].shape;  // HF (out, in)
    if (kLayerKeys[k].kernel) std::reverse(s.begin(), s.end());             // Flax (in, out)
    flax_shapes_.push_back(s);
  }
  auto check = [&](const std::string& key, std::vector<int64_t> shape) {
    const JaxArray& a = *find(key);
    if (a.shape != shape)
      throw InputError(where + ": '" + key + "' has shape " + dims_text(a.shape) + ", the config (" + c.describe() + ") needs " + dims_text(shape));
    if (a.dtype != "float32" && a.dtype != "float16" && a.dtype != "bfloat16")
      throw InputError(where + ": '" + key + "' is " + a.dtype + ": only float32, float16 and bfloat16 arrays are imported");
  };
  check("transformer/wte/embedding", {vocab, hidden});
  check("transformer/ln_f/kernel", {hidden});
  check("lm_head/kernel", {hidden, vocab});
  for (int k = 0; k < kLayerKeyCount; ++k) {
    if (stacked_) {
      std::vector<int64_t> s = flax_shapes_[k];
      s.insert(s.begin() + scan_axis_, layers);
      check(layer_key(k, 0), s);
    } else {
      for (int64_t l = 0; l < layers; ++l) check(layer_key(k, l), flax_shapes_[k]);
    }
  }
  if (vte) {
    vision_vocab_ = c.vision_vocab_size;
    check("transformer/vte/embedding", {vision_vocab_, hidden});
    check("vision_head/kernel", {hidden, vision_vocab_});
    notes_.push_back("a vision model: transformer/vte/embedding -> model.embed_vision.weight, vision_head/kernel -> "
                     "vision_head.weight [" + std::to_string(vision_vocab_) + ", " + std::to_string(hidden) + "]");
  }
  config_.torch_dtype = wte.dtype;  // numpy and torch agree on these three names
  notes_.push_back("RoPE: q_proj and k_proj rows permuted from LWM's adjacent pairs to rotate-half");
}

void LwmSource::read_layer(int k, int64_t l, float* dst) const {
  const JaxArray& a = *find("transformer/h/" + (stacked_ ? std::string(kScanName) : std::to_string(l)) + "/" + kLayerKeys[k].path);
  const std::vector<int64_t>& s = flax_shapes_[k];
  int64_t count = 1;
  for (int64_t d : s) count *= d;
  if (!stacked_) return read_flat(a, 0, count, dst);
  if (scan_axis_ == 0) return read_flat(a, l * count, count, dst);
  // [d0, layers, rest...]: row i of layer l is at (i * layers + l) * rest.
  const int64_t layers = a.shape[1], rows = s[0], rest = count / rows;
  for (int64_t i = 0; i < rows; ++i) read_flat(a, (i * layers + l) * rest, rest, dst + i * rest);
}

void LwmSource::write_tensors(ParamFileWriter& writer, const std::function<void(int64_t, int64_t)>& progress) const {
  const model::LlamaConfig& c = config_.llama;
  const auto units = model::parameter_units(c);
  const int64_t total = static_cast<int64_t>(2 + 9 * c.num_hidden_layers + 1 + (vision_vocab_ ? 2 : 0));
  int64_t done = 0;
  auto step = [&] {
    if (progress) progress(++done, total);
  };
  std::vector<float> flax, hf;
  auto whole = [&](const std::string& key, std::vector<float>& dst) {
    const JaxArray& a = *find(key);
    dst.resize(static_cast<std::size_t>(a.count()));
    read_flat(a, 0, a.count(), dst.data());
    release(a);
    return a.shape;
  };
  whole("transformer/wte/embedding", hf);
  writer.write_param("model.embed_tokens.weight", hf.data());
  step();

  // Layer by layer per key: a stacked array is read through once, then its pages are released.
  for (int k = 0; k < kLayerKeyCount; ++k) {
    const std::vector<int64_t>& s = flax_shapes_[k];
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const auto& spec = units[1 + l].tensors[kLayerKeys[k].tensor];
      flax.resize(static_cast<std::size_t>(spec.count()));
      read_layer(k, l, flax.data());
      const float* out = flax.data();
      if (kLayerKeys[k].kernel) {
        hf.resize(flax.size());
        transpose(flax.data(), s[0], s[1], hf.data());
        out = hf.data();
        const bool rope = kLayerKeys[k].tensor == model::kQProj || kLayerKeys[k].tensor == model::kKProj;
        if (rope) {
          const int64_t heads = kLayerKeys[k].tensor == model::kQProj ? c.num_attention_heads : c.num_key_value_heads;
          adjacent_pairs_to_rotate_half(hf.data(), heads, c.head_dim(), c.hidden_size, flax.data());
          out = flax.data();
        }
      }
      writer.write_param(spec.name, out);
      if (!stacked_) release(*find("transformer/h/" + std::to_string(l) + "/" + kLayerKeys[k].path));
      step();
    }
    if (stacked_) release(*find("transformer/h/" + std::string(kScanName) + "/" + kLayerKeys[k].path));
  }
  whole("transformer/ln_f/kernel", hf);
  writer.write_param("model.norm.weight", hf.data());
  step();
  whole("lm_head/kernel", flax);
  hf.resize(flax.size());
  transpose(flax.data(), c.hidden_size, c.vocab_size, hf.data());
  writer.write_param("lm_head.weight", hf.data());
  step();
  if (vision_vocab_) {
    whole("transformer/vte/embedding", hf);
    writer.write_param("model.embed_vision.weight", hf.data());
    step();
    whole("vision_head/kernel", flax);
    hf.resize(flax.size());
    transpose(flax.data(), c.hidden_size, vision_vocab_, hf.data());
    writer.write_param("vision_head.weight", hf.data());
    step();
  }
}

}  // namespace

void adjacent_pairs_to_rotate_half(const float* w, int64_t heads, int64_t head_dim, int64_t in, float* out) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const float* src = w + (h * head_dim + 2 * i + j) * in;
        std::copy(src, src + in, out + (h * head_dim + j * half + i) * in);
      }
}

LwmModelSpec lwm_model_preset(const std::string& name) {
  if (name != "lwm-7b") throw InputError("unknown model preset '" + name + "' (known: lwm-7b; or a .json or .ini config file)");
  LwmModelSpec s;
  s.origin = "preset lwm-7b";
  s.vocab_size = 32000;
  s.hidden_size = 4096;
  s.intermediate_size = 11008;
  s.num_hidden_layers = 32;
  s.num_attention_heads = 32;
  s.num_key_value_heads = 32;
  s.rms_norm_eps = 1e-6;
  s.rope_theta = 5e7;
  s.max_position_embeddings = 1048576;
  s.bos_token_id = 1;
  s.eos_token_id = 2;
  return s;
}

LwmModelSpec parse_lwm_config_json(const std::string& json_text, const std::string& file) {
  const std::string where = "config file '" + file + "'";
  const nlohmann::json c = parse_json_object(json_text, where, 8);
  LwmModelSpec s;
  s.origin = where;
  // Hugging Face name first, LWM's name second; both given must agree.
  auto integer = [&](std::optional<int64_t>& field, const char* name, const char* lwm_name = nullptr) {
    for (const char* n : {name, lwm_name}) {
      if (!n || !c.contains(n) || c.at(n).is_null()) continue;
      if (!c.at(n).is_number_integer()) throw InputError(where + ": \"" + n + "\" is " + c.at(n).dump() + ", not an integer");
      const int64_t v = c.at(n).get<int64_t>();
      if (field && *field != v) throw InputError(where + ": \"" + name + "\" and \"" + n + "\" disagree");
      field = v;
    }
  };
  auto real = [&](std::optional<double>& field, const char* name, const char* lwm_name = nullptr) {
    for (const char* n : {name, lwm_name}) {
      if (!n || !c.contains(n) || c.at(n).is_null()) continue;
      if (!c.at(n).is_number()) throw InputError(where + ": \"" + n + "\" is " + c.at(n).dump() + ", not a number");
      const double v = c.at(n).get<double>();
      if (field && *field != v) throw InputError(where + ": \"" + name + "\" and \"" + n + "\" disagree");
      field = v;
    }
  };
  integer(s.vocab_size, "vocab_size");
  integer(s.vision_vocab_size, "vision_vocab_size");
  integer(s.hidden_size, "hidden_size");
  integer(s.intermediate_size, "intermediate_size");
  integer(s.num_hidden_layers, "num_hidden_layers");
  integer(s.num_attention_heads, "num_attention_heads");
  integer(s.num_key_value_heads, "num_key_value_heads");
  integer(s.max_position_embeddings, "max_position_embeddings", "max_sequence_length");
  integer(s.bos_token_id, "bos_token_id");
  integer(s.eos_token_id, "eos_token_id");
  integer(s.scan_axis, "param_scan_axis");
  real(s.rms_norm_eps, "rms_norm_eps");
  real(s.rope_theta, "rope_theta", "theta");
  return s;
}

std::unique_ptr<ImportSource> open_lwm_jax(const std::string& file, const LwmModelSpec& spec) {
  return std::make_unique<LwmSource>(file, spec);
}

}  // namespace rw::io
