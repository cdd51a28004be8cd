// test_import_export.cpp: `ringworld import` and `ringworld export` end to end, on files this test
// writes itself (tests/model_files_support.h: safetensors and LWM JAX streams made with
// nlohmann-json and msgpack-c directly, not with io/), and on a fixture written once by an
// independent implementation (tests/fixtures/make_tiny_llama.py: PyTorch).
//
// What is tested:
//   * Hugging Face import: F32, F16 and BF16 tensors (mixed in one file, with subnormals and
//     signed zeros) become float32 bit-exactly; one file and three shards with an index; the
//     output is a parameter file that `forward` (np 1, 2) runs, matching the fp64 model of the
//     same weights, and `ckpt info` validates; its attributes (max_position_embeddings, bos/eos,
//     torch_dtype, source); tie_word_embeddings (lm_head written as the embedding's copy).
//   * The PyTorch fixture: ringworld's logits of the imported BF16 model against PyTorch's fp64
//     and fp32 logits (the rule of tests/test_support.h).
//   * LWM JAX import (adjacent-pair RoPE): a tiny model and its fp64 forward written here in
//     LWM's conventions (Flax (in, out) kernels, RoPE on adjacent pairs); `forward` of the
//     imported rotate-half twin gives the same logits (the rule); the same weights imported with
//     the permutation left out would not (checked, so the test can fail). The same model as a
//     train state with layers stacked by nn.scan (layer axis 0, chunked arrays, float32, vision
//     tables, optimizer entries) and stacked on axis 1 in float16 imports to bit-identical
//     parameters; the vision tables land in /vision.
//   * Export: fp32 export then import gives bit-identical tensors (sharded with an index: every
//     shard's offsets contiguous, metadata format "pt"); bf16 and fp16 exports hold exactly the
//     nearest-even roundings (hand-worked values: overflow to inf, subnormals, -0, NaN); a
//     training checkpoint exports like its parameter file; config.json reads back.
//   * Tokenizer (with SentencePiece and spm_train): tokenizer.model beside the weights is recorded
//     as `prepare` records it (path + `cksum`), copied back by export; too many pieces refused.
//   * Bad input: one clear error each, non-zero exit, nothing left behind: malformed header,
//     truncated file, overlapping and out-of-range offsets, wrong shape, unknown/missing tensor,
//     unsupported dtype, unsupported config, pickle weights, index inconsistencies, a JAX stream
//     with a bad ExtType / wrong shape / truncation / unknown key, missing or contradicting
//     config, more than one rank; export into a directory holding weights, bad options, a
//     corrupted tensor.
// About 70 short runs of the tool under mpirun: 12 s of CPU (user + system) in all; the wall time is
// mostly mpirun start-up (137 s measured on 2 cores shared with a load average of 14).
#include <hdf5.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "device/backend.h"
#include "src/attention/attention_ops.h"
#include "src/data/batch.h"
#include "src/model/llama_config.h"
#include "src/model/local_params.h"
#include "src/model/matmul.h"
#include "src/model/reference_transformer.h"
#include "io/image_file.h"
#include "io/token_dataset.h"
#include "io/video_reader.h"
#include "tests/integration/integration_support.h"
#include "tests/model_files_support.h"
#include "tests/test_support.h"

#ifndef RW_FIXTURES_DIR
#error "RW_FIXTURES_DIR (tests/fixtures) must be defined"
#endif

namespace fs = std::filesystem;
using namespace rw::test;
using rw::model::LlamaConfig;
using json = nlohmann::json;

namespace {

// ---- models ---------------------------------------------------------------------------------------

using Tensors = std::map<std::string, std::vector<float>>;  // name -> row-major values

// GQA (4 heads on 2 kv heads), a rope_theta other than the default, as a published config has.
LlamaConfig tiny_config() {
  LlamaConfig c = tiny_llama(37, 16, 40, 2, 4, 2, 2e5);
  c.rms_norm_eps = 1e-6;
  return c;
}

std::vector<rw::model::TensorSpec> specs_of(const LlamaConfig& c) {
  std::vector<rw::model::TensorSpec> specs;
  for (const auto& unit : rw::model::parameter_units(c))
    for (const auto& t : unit.tensors) specs.push_back(t);
  return specs;
}

// Values exact in bfloat16 and in binary16 (7 fraction bits, magnitudes in [2^-10, 2^4)), so
// every dtype stores the same numbers. Projections std ~0.3, norms 1 +- 0.2.
float representable(float x) {
  float v = from_u16_bytes(to_bf16_bytes({x}), true)[0];
  if (std::fabs(v) < 1.0f / 1024) v = std::copysign(1.0f / 1024, x);
  return v;
}

Tensors random_tensors(const LlamaConfig& c, uint64_t seed) {
  Rng rng(seed);
  Tensors t;
  for (const auto& spec : specs_of(c)) {
    std::vector<float>& v = t[spec.name];
    v.resize(static_cast<std::size_t>(spec.count()));
    for (auto& x : v) x = representable(spec.is_norm ? 1.f + rng.symmetric(0.2f) : rng.symmetric(0.3f * std::sqrt(3.f)));
  }
  return t;
}

std::string encode(const std::vector<float>& v, const std::string& dtype) {
  if (dtype == "F32" || dtype == "float32") return f32_bytes(v);
  if (dtype == "BF16" || dtype == "bfloat16") return to_bf16_bytes(v);
  return to_f16_bytes(v);
}

// What import must produce from values stored in `dtype`.
std::vector<float> stored_value(const std::vector<float>& v, const std::string& dtype) {
  if (dtype == "F32") return v;
  return from_u16_bytes(encode(v, dtype), dtype == "BF16");
}

json hf_config_json(const LlamaConfig& c) {
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_act", "silu"},
          {"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.num_hidden_layers}, {"num_attention_heads", c.num_attention_heads},
          {"num_key_value_heads", c.num_key_value_heads}, {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta}, {"max_position_embeddings", 512}, {"tie_word_embeddings", false},
          {"bos_token_id", 1}, {"eos_token_id", 2}, {"torch_dtype", "bfloat16"}};
}

struct HfDirOptions {
  int n_shards = 1;
  std::function<std::string(const std::string&)> dtype_of = [](const std::string&) { return std::string("F32"); };
  std::set<std::string> skip;  // tensors left out
};

// DIR/config.json and the weights: model.safetensors, or n shards and the index.
void write_hf_dir(const fs::path& dir, const json& config, const LlamaConfig& c, const Tensors& t, const HfDirOptions& o = {}) {
  fs::create_directories(dir);
  write_file((dir / "config.json").string(), config.dump(2));
  std::vector<SafetensorsBuilder> shards(o.n_shards);
  json weight_map = json::object();
  std::size_t i = 0;
  for (const auto& spec : specs_of(c)) {
    if (o.skip.count(spec.name)) continue;
    const std::size_t s = i++ % shards.size();
    const std::string dtype = o.dtype_of(spec.name);
    shards[s].add(spec.name, dtype, spec.shape, encode(t.at(spec.name), dtype));
    weight_map[spec.name] = "model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(o.n_shards) + ".safetensors";
  }
  if (o.n_shards == 1) {
    shards[0].header()["__metadata__"] = {{"format", "pt"}};
    write_file((dir / "model.safetensors").string(), shards[0].bytes());
    return;
  }
  for (std::size_t s = 0; s < shards.size(); ++s)
    write_file((dir / ("model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(o.n_shards) + ".safetensors")).string(),
               shards[s].bytes());
  write_file((dir / "model.safetensors.index.json").string(), json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());
}

// /params/<name> of every parameter of `c` in a parameter file.
Tensors read_params(const fs::path& path, const LlamaConfig& c) {
  INFO("reading " << path);
  const H5File f(path);
  REQUIRE(f.ok());
  Tensors t;
  for (const auto& spec : specs_of(c))
    t[spec.name] = read_f32(f.id(), "params/" + spec.name, std::vector<hsize_t>(spec.shape.begin(), spec.shape.end()));
  return t;
}

void check_same_bits(const Tensors& got, const Tensors& want) {
  for (const auto& [name, values] : want) {
    INFO("tensor " << name);
    REQUIRE(got.count(name));
    CHECK(same_bits(got.at(name), values));
  }
}

// ---- running the tool ------------------------------------------------------------------------------

RunResult run_tool(const ScratchDir& dir, int np, const std::string& args) {
  return run_ringworld(np, args, 60, dir / "stdout.txt", dir / "stderr.txt");
}

std::string import_hf_args(const fs::path& src, const fs::path& out) {
  return "import --from hf " + quoted(src) + " --output " + quoted(out) + " --tokenizer none";
}

// ---- logits: the tool and the references ----------------------------------------------------------

struct Tokens {
  int batch = 2, seq = 20;
  std::vector<int32_t> ids;
};

Tokens random_tokens(int vocab, uint64_t seed) {
  Tokens t;
  Rng rng(seed);
  t.ids.resize(static_cast<std::size_t>(t.batch) * t.seq);
  for (auto& id : t.ids) id = rng.below(vocab);
  return t;
}

// `ringworld forward` of a parameter file on the tokens: logits [batch, seq, vocab].
std::vector<float> tool_logits(const ScratchDir& dir, int np, const fs::path& params, const Tokens& tokens, int64_t vocab) {
  const fs::path in = dir / "tokens.h5", out = dir / "logits.h5";
  {
    H5Writer f(in);
    f.i32("tokens", {hsize_t(tokens.batch), hsize_t(tokens.seq)}, tokens.ids);
  }
  const RunResult r = run_tool(dir, np,
                               "forward --quiet --checkpoint " + quoted(params) + " --input " + quoted(in) + " --output " +
                                   quoted(out) + " --layout zigzag");
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  const H5File f(out);
  REQUIRE(f.ok());
  return read_f32(f.id(), "logits", {hsize_t(tokens.batch), hsize_t(tokens.seq), hsize_t(vocab)});
}

rw::data::LocalBatch batch_of(const Tokens& t) {
  rw::data::LocalBatch b;
  b.n_sequences = t.batch;
  b.n_local = t.seq;
  b.tokens = t.ids;
  const std::size_t n = t.ids.size();
  b.targets.assign(n, -1);
  b.segment_ids.assign(n, 0);
  b.loss_weights.assign(n, 1.f);
  b.positions.resize(n);
  for (int s = 0; s < t.batch; ++s)
    for (int i = 0; i < t.seq; ++i) {
      const std::size_t k = static_cast<std::size_t>(s) * t.seq + i;
      b.positions[k] = i;
      if (i + 1 < t.seq) b.targets[k] = t.ids[k + 1];
    }
  return b;
}

// ringworld's model (rotate-half RoPE, Hugging Face layout) on these weights, in T.
template <class T>
std::vector<double> ringworld_model_logits(const LlamaConfig& c, const Tensors& t, const Tokens& tokens, rw::model::MatMul<T>& matmul) {
  rw::model::LocalParams<T> params(c, 0);
  const auto& units = params.units();
  for (std::size_t u = 0; u < units.size(); ++u)
    for (std::size_t k = 0; k < units[u].tensors.size(); ++k) {
      const auto& v = t.at(units[u].tensors[k].name);
      std::copy(v.begin(), v.end(), params.weights[u].begin() + units[u].offsets[k]);
    }
  rw::ReferenceAttentionOp<T> attention(true);
  rw::model::ReferenceTransformer<T> model(c, params, attention, matmul);
  const rw::data::LocalBatch batch = batch_of(tokens);
  std::vector<T> logits(static_cast<std::size_t>(batch.token_count() * c.total_vocab_size()));
  model.forward(batch, logits.data());
  return std::vector<double>(logits.begin(), logits.end());
}

struct Reference {
  std::vector<double> fp64, fp32;
};

Reference ringworld_reference(const LlamaConfig& c, const Tensors& t, const Tokens& tokens) {
  rw::model::CpuMatMulDouble matmul64;
  auto backend = rw::device::make_backend("cpu");
  rw::model::BackendMatMul matmul32(*backend);
  return {ringworld_model_logits<double>(c, t, tokens, matmul64), ringworld_model_logits<float>(c, t, tokens, matmul32)};
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// ---- LWM's model, in LWM's conventions ------------------------------------------------------------

struct FlaxArray {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
using FlaxTensors = std::map<std::string, FlaxArray>;  // key path (without prefix) -> array

const char* const kLayerKeys[] = {"attention/wq/kernel", "attention/wk/kernel", "attention/wv/kernel",
                                  "attention/wo/kernel", "feed_forward/w1/kernel", "feed_forward/w2/kernel",
                                  "feed_forward/w3/kernel", "attention_norm/kernel", "ffn_norm/kernel"};
constexpr int64_t kVisionVocab = 11;

FlaxTensors random_lwm(const LlamaConfig& c, uint64_t seed) {
  Rng rng(seed);
  const int64_t h = c.hidden_size, kv = c.kv_width(), in = c.intermediate_size;
  FlaxTensors f;
  auto add = [&](const std::string& key, std::vector<int64_t> shape, bool norm) {
    FlaxArray a;
    a.shape = shape;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    a.values.resize(static_cast<std::size_t>(n));
    for (auto& x : a.values) x = representable(norm ? 1.f + rng.symmetric(0.2f) : rng.symmetric(0.3f * std::sqrt(3.f)));
    f[key] = a;
  };
  add("transformer/wte/embedding", {c.vocab_size, h}, false);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "transformer/h/" + std::to_string(l) + "/";
    add(p + "attention/wq/kernel", {h, h}, false);
    add(p + "attention/wk/kernel", {h, kv}, false);
    add(p + "attention/wv/kernel", {h, kv}, false);
    add(p + "attention/wo/kernel", {h, h}, false);
    add(p + "feed_forward/w1/kernel", {h, in}, false);
    add(p + "feed_forward/w2/kernel", {in, h}, false);
    add(p + "feed_forward/w3/kernel", {h, in}, false);
    add(p + "attention_norm/kernel", {h}, true);
    add(p + "ffn_norm/kernel", {h}, true);
  }
  add("transformer/ln_f/kernel", {h}, true);
  add("lm_head/kernel", {h, c.vocab_size}, false);
  add("transformer/vte/embedding", {kVisionVocab, h}, false);
  add("vision_head/kernel", {h, kVisionVocab}, false);
  return f;
}

// LWM's LLaMA forward (lwm/llama.py) in T: x @ kernel with (in, out) kernels, RMSNorm, RoPE
// rotating adjacent pairs (x[2i], x[2i+1]) by pos * theta^(-2i/d), causal softmax attention with
// kv heads shared by groups of query heads, SwiGLU w2(silu(w1 x) * w3 x). Logits [batch, seq, vocab].
// With the vision tables (LWM's vision model): an id >= vocab is vision id - vocab, embedded by
// vte, and each row's logits are lm_head's then vision_head's ([batch, seq, vocab + vision vocab]).
template <class T>
std::vector<double> lwm_logits(const LlamaConfig& c, const FlaxTensors& f, const Tokens& tokens) {
  const int64_t h = c.hidden_size, heads = c.num_attention_heads, kv_heads = c.num_key_value_heads, d = c.head_dim();
  const int64_t s = tokens.seq, v = c.vocab_size;
  auto w = [&](const std::string& key) { return std::vector<T>(f.at(key).values.begin(), f.at(key).values.end()); };
  auto matmul = [](const std::vector<T>& x, int64_t rows, const std::vector<T>& k, int64_t in, int64_t out) {
    std::vector<T> y(static_cast<std::size_t>(rows * out), T(0));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < in; ++i)
        for (int64_t o = 0; o < out; ++o) y[r * out + o] += x[r * in + i] * k[i * out + o];
    return y;
  };
  auto rmsnorm = [&](const std::vector<T>& x, const std::vector<T>& g) {
    std::vector<T> y(x.size());
    for (int64_t r = 0; r < s; ++r) {
      T ms = 0;
      for (int64_t i = 0; i < h; ++i) ms += x[r * h + i] * x[r * h + i];
      const T inv = T(1) / std::sqrt(ms / T(h) + T(c.rms_norm_eps));
      for (int64_t i = 0; i < h; ++i) y[r * h + i] = x[r * h + i] * inv * g[i];
    }
    return y;
  };
  auto rope_adjacent = [&](std::vector<T>& x, int64_t n_heads) {
    for (int64_t r = 0; r < s; ++r)
      for (int64_t hh = 0; hh < n_heads; ++hh)
        for (int64_t i = 0; i < d / 2; ++i) {
          const double angle = double(r) * std::pow(c.rope_theta, -2.0 * double(i) / double(d));
          const T cs = T(std::cos(angle)), sn = T(std::sin(angle));
          T& a = x[(r * n_heads + hh) * d + 2 * i];
          T& b = x[(r * n_heads + hh) * d + 2 * i + 1];
          const T xa = a, xb = b;
          a = xa * cs - xb * sn;
          b = xb * cs + xa * sn;
        }
  };
  std::vector<double> logits;
  const auto wte = w("transformer/wte/embedding");
  const bool vision = f.count("transformer/vte/embedding") > 0;
  const auto vte = vision ? w("transformer/vte/embedding") : std::vector<T>{};
  const int64_t vv = vision ? f.at("transformer/vte/embedding").shape[0] : 0;
  for (int b = 0; b < tokens.batch; ++b) {
    std::vector<T> x(static_cast<std::size_t>(s * h));
    for (int64_t r = 0; r < s; ++r) {
      const int64_t id = tokens.ids[b * s + r];
      for (int64_t i = 0; i < h; ++i) x[r * h + i] = id < v ? wte[id * h + i] : vte[(id - v) * h + i];
    }
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string p = "transformer/h/" + std::to_string(l) + "/";
      const auto a = rmsnorm(x, w(p + "attention_norm/kernel"));
      auto q = matmul(a, s, w(p + "attention/wq/kernel"), h, h);
      auto k = matmul(a, s, w(p + "attention/wk/kernel"), h, kv_heads * d);
      const auto vv = matmul(a, s, w(p + "attention/wv/kernel"), h, kv_heads * d);
      rope_adjacent(q, heads);
      rope_adjacent(k, kv_heads);
      std::vector<T> o(static_cast<std::size_t>(s * h), T(0));
      for (int64_t hh = 0; hh < heads; ++hh) {
        const int64_t g = hh / (heads / kv_heads);
        for (int64_t i = 0; i < s; ++i) {
          std::vector<T> score(static_cast<std::size_t>(i + 1));
          T top = -INFINITY;
          for (int64_t j = 0; j <= i; ++j) {
            T dot = 0;
            for (int64_t e = 0; e < d; ++e) dot += q[(i * heads + hh) * d + e] * k[(j * kv_heads + g) * d + e];
            score[j] = dot / std::sqrt(T(d));
            top = std::max(top, score[j]);
          }
          T sum = 0;
          for (auto& sc : score) sum += (sc = std::exp(sc - top));
          for (int64_t j = 0; j <= i; ++j)
            for (int64_t e = 0; e < d; ++e) o[(i * heads + hh) * d + e] += score[j] / sum * vv[(j * kv_heads + g) * d + e];
        }
      }
      const auto attn = matmul(o, s, w(p + "attention/wo/kernel"), h, h);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += attn[i];
      const auto m = rmsnorm(x, w(p + "ffn_norm/kernel"));
      const auto g1 = matmul(m, s, w(p + "feed_forward/w1/kernel"), h, c.intermediate_size);
      const auto g3 = matmul(m, s, w(p + "feed_forward/w3/kernel"), h, c.intermediate_size);
      std::vector<T> act(g1.size());
      for (std::size_t i = 0; i < act.size(); ++i) act[i] = g1[i] / (T(1) + std::exp(-g1[i])) * g3[i];
      const auto down = matmul(act, s, w(p + "feed_forward/w2/kernel"), c.intermediate_size, h);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += down[i];
    }
    const auto normed = rmsnorm(x, w("transformer/ln_f/kernel"));
    const auto out = matmul(normed, s, w("lm_head/kernel"), h, v);
    const auto vision_out = vision ? matmul(normed, s, w("vision_head/kernel"), h, vv) : std::vector<T>{};
    for (int64_t r = 0; r < s; ++r) {
      logits.insert(logits.end(), out.begin() + r * v, out.begin() + (r + 1) * v);
      if (vision) logits.insert(logits.end(), vision_out.begin() + r * vv, vision_out.begin() + (r + 1) * vv);
    }
  }
  return logits;
}

std::vector<float> transposed(const FlaxArray& a) {
  std::vector<float> t(a.values.size());
  for (int64_t r = 0; r < a.shape[0]; ++r)
    for (int64_t col = 0; col < a.shape[1]; ++col) t[col * a.shape[0] + r] = a.values[r * a.shape[1] + col];
  return t;
}

// The LWM model's weights in the Hugging Face layout by transposition alone (no RoPE permutation).
Tensors lwm_as_hf_unpermuted(const LlamaConfig& c, const FlaxTensors& f) {
  Tensors t;
  const char* const names[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                               "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.down_proj.weight",
                               "mlp.up_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"};
  t["model.embed_tokens.weight"] = f.at("transformer/wte/embedding").values;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (int k = 0; k < 9; ++k) {
      const FlaxArray& a = f.at("transformer/h/" + std::to_string(l) + "/" + kLayerKeys[k]);
      t["model.layers." + std::to_string(l) + "." + names[k]] = k < 7 ? transposed(a) : a.values;
    }
  t["model.norm.weight"] = f.at("transformer/ln_f/kernel").values;
  t["lm_head.weight"] = transposed(f.at("lm_head/kernel"));
  if (f.count("transformer/vte/embedding")) {
    t["model.embed_vision.weight"] = f.at("transformer/vte/embedding").values;
    t["vision_head.weight"] = transposed(f.at("vision_head/kernel"));
  }
  return t;
}

struct StreamOptions {
  std::string dtype = "bfloat16";
  int scan_axis = -1;               // -1: per-layer keys; 0 or 1: stacked under scan_decoder
  std::size_t chunk_elems = 0;      // > 0: stacked arrays as flax chunked arrays
  bool train_state = false;         // keys under params/params, plus optimizer entries and step
};

std::string lwm_stream(const LlamaConfig& c, const FlaxTensors& f, const StreamOptions& o) {
  const std::vector<std::string> prefix = o.train_state ? std::vector<std::string>{"params", "params"} : std::vector<std::string>{};
  auto key = [&](const std::string& path) {
    std::vector<std::string> k = prefix;
    for (const auto& part : split_key(path)) k.push_back(part);
    return k;
  };
  const std::size_t element = o.dtype == "float32" ? 4 : 2;
  std::string out;
  if (o.train_state) {
    out += pack_jax_record({"opt_state", "1", "0", "mu", "lm_head", "kernel"}, pack_jax_array({2}, "float32", f32_bytes({1, 2})));
    out += pack_jax_record({"step"}, std::string("\x07", 1), false);
  }
  for (const auto& [path, a] : f) {
    if (path.rfind("transformer/h/", 0) == 0 && o.scan_axis >= 0) continue;
    out += pack_jax_record(key(path), pack_jax_array(a.shape, o.dtype, encode(a.values, o.dtype)));
  }
  if (o.scan_axis >= 0)
    for (const char* sub : kLayerKeys) {
      // Stack the layers along the scan axis: [L, rest...] or [d0, L, rest...].
      const FlaxArray& first = f.at("transformer/h/0/" + std::string(sub));
      const int64_t layers = c.num_hidden_layers, rows = first.shape[0];
      const int64_t rest = static_cast<int64_t>(first.values.size()) / rows;
      std::vector<int64_t> shape = first.shape;
      shape.insert(shape.begin() + o.scan_axis, layers);
      std::vector<float> stacked(first.values.size() * layers);
      for (int64_t l = 0; l < layers; ++l) {
        const auto& v = f.at("transformer/h/" + std::to_string(l) + "/" + sub).values;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t e = 0; e < rest; ++e) {
            const int64_t at = o.scan_axis == 0 ? (l * rows + r) * rest + e : (r * layers + l) * rest + e;
            stacked[at] = v[r * rest + e];
          }
      }
      const std::string raw = encode(stacked, o.dtype);
      const std::string value = o.chunk_elems ? pack_jax_chunked(shape, o.dtype, raw, element, o.chunk_elems)
                                              : pack_jax_array(shape, o.dtype, raw);
      out += pack_jax_record(key("transformer/h/scan_decoder/" + std::string(sub)), value);
    }
  return out;
}

}  // namespace

// ---- Hugging Face import ----------------------------------------------------------------------------

TEST_CASE("import --from hf: every dtype bit-exact, one file or shards; forward and ckpt accept the result", "[import]") {
  ScratchDir dir("import_hf");
  const LlamaConfig c = tiny_config();
  Tensors t = random_tensors(c, 1);
  // Values that only exact conversion keeps: subnormal binary16 / bfloat16, -0, the extremes.
  auto& embed = t["model.embed_tokens.weight"];
  embed[0] = std::ldexp(3.0f, -24);   // binary16 subnormal
  embed[1] = -0.0f;
  embed[2] = 65504.0f;                // largest binary16
  embed[3] = std::ldexp(1.0f, -130);  // bfloat16 (and float32) subnormal
  const std::string dtypes[] = {"F32", "F16", "BF16"};
  HfDirOptions mixed;
  mixed.dtype_of = [&](const std::string& name) {
    if (name == "model.embed_tokens.weight") return std::string("F32");
    return dtypes[std::hash<std::string>()(name) % 3];
  };
  Tensors expected;
  for (const auto& [name, v] : t) expected[name] = stored_value(v, mixed.dtype_of(name));

  for (int n_shards : {1, 3}) {
    INFO(n_shards << " shard(s)");
    HfDirOptions o = mixed;
    o.n_shards = n_shards;
    const fs::path src = dir / ("hf" + std::to_string(n_shards)), out = dir / ("imported" + std::to_string(n_shards) + ".h5");
    write_hf_dir(src, hf_config_json(c), c, t, o);
    const RunResult r = run_tool(dir, 1, import_hf_args(src, out));
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK_FALSE(fs::exists(out.string() + ".tmp"));
    check_same_bits(read_params(out, c), expected);
    const H5File f(out);
    CHECK(get_i64(f.id(), "max_position_embeddings") == 512);
    CHECK(get_i64(f.id(), "bos_token_id") == 1);
    CHECK(get_i64(f.id(), "eos_token_id") == 2);
    CHECK(get_str(f.id(), "torch_dtype") == "bfloat16");
    CHECK(get_str(f.id(), "source") == "hf:" + fs::absolute(src).lexically_normal().string());
    CHECK(get_f64(f.id(), "rope_theta") == c.rope_theta);
    CHECK(get_f64(f.id(), "rms_norm_eps") == c.rms_norm_eps);
  }
  // Every dtype on its own, each tensor of it.
  for (const std::string& dtype : dtypes) {
    HfDirOptions o;
    o.dtype_of = [&](const std::string&) { return dtype; };
    const fs::path src = dir / ("hf_" + dtype), out = dir / ("imported_" + dtype + ".h5");
    write_hf_dir(src, hf_config_json(c), c, t, o);
    const RunResult r = run_tool(dir, 1, import_hf_args(src, out));
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    Tensors want;
    for (const auto& [name, v] : t) want[name] = stored_value(v, dtype);
    check_same_bits(read_params(out, c), want);
  }

  // The result is a parameter file like train's: ckpt info validates it, forward runs it.
  const fs::path imported = dir / "imported1.h5";
  RunResult info = run_tool(dir, 1, "ckpt info " + quoted(imported));
  INFO(show(info));
  CHECK(info.exit_code == 0);
  CHECK(info.stdout_text.find("valid: every parameter present and shaped") != std::string::npos);
  expected["model.embed_tokens.weight"][2] = 0.5f;  // keep the reference's logits in range: re-import
  t["model.embed_tokens.weight"][2] = 0.5f;
  write_hf_dir(dir / "hf_forward", hf_config_json(c), c, t, mixed);
  const fs::path fwd = dir / "forward.h5";
  REQUIRE(run_tool(dir, 1, import_hf_args(dir / "hf_forward", fwd)).exit_code == 0);
  const Tokens tokens = random_tokens(static_cast<int>(c.vocab_size), 5);
  const Reference ref = ringworld_reference(c, expected, tokens);
  for (int np : {1, 2}) {
    INFO("forward on " << np << " rank(s)");
    check_tensor("logits", tool_logits(dir, np, fwd, tokens, c.vocab_size), ref.fp64, ref.fp32);
  }
}

TEST_CASE("import --from hf: tie_word_embeddings writes lm_head as the embedding's copy", "[import]") {
  ScratchDir dir("import_hf_tied");
  const LlamaConfig c = tiny_config();
  const Tensors t = random_tensors(c, 2);
  json config = hf_config_json(c);
  config["tie_word_embeddings"] = true;
  HfDirOptions o;
  o.skip = {"lm_head.weight"};
  write_hf_dir(dir / "hf", config, c, t, o);
  const RunResult r = run_tool(dir, 1, import_hf_args(dir / "hf", dir / "out.h5"));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.stdout_text.find("tie_word_embeddings: lm_head.weight written as a copy of model.embed_tokens.weight") != std::string::npos);
  const Tensors got = read_params(dir / "out.h5", c);
  CHECK(same_bits(got.at("lm_head.weight"), t.at("model.embed_tokens.weight")));
  CHECK(same_bits(got.at("model.embed_tokens.weight"), t.at("model.embed_tokens.weight")));
}

TEST_CASE("import --from hf: the PyTorch fixture's logits", "[import]") {
  ScratchDir dir("import_fixture");
  const fs::path fixture = fs::path(RW_FIXTURES_DIR) / "tiny_llama";
  const fs::path out = dir / "tiny.h5";
  const RunResult r = run_tool(dir, 1, import_hf_args(fixture, out));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  const StoredSafetensors expected = read_safetensors_file((fixture / "expected.safetensors").string());
  REQUIRE(expected.tensors.count("tokens"));
  const StoredTensor& tok = expected.tensors.at("tokens");
  REQUIRE(tok.dtype == "I32");
  Tokens tokens;
  tokens.batch = static_cast<int>(tok.shape[0]);
  tokens.seq = static_cast<int>(tok.shape[1]);
  tokens.ids.resize(tok.bytes.size() / 4);
  std::memcpy(tokens.ids.data(), tok.bytes.data(), tok.bytes.size());
  const StoredTensor& l64 = expected.tensors.at("logits_fp64");
  const StoredTensor& l32 = expected.tensors.at("logits_fp32");
  REQUIRE(l64.dtype == "F64");
  REQUIRE(l32.dtype == "F32");
  std::vector<double> fp64(l64.bytes.size() / 8), fp32(l32.bytes.size() / 4);
  std::memcpy(fp64.data(), l64.bytes.data(), l64.bytes.size());
  std::vector<float> fp32f(fp32.size());
  std::memcpy(fp32f.data(), l32.bytes.data(), l32.bytes.size());
  fp32.assign(fp32f.begin(), fp32f.end());
  const int64_t vocab = l64.shape[2];
  // The rule of tests/test_support.h: PyTorch's fp32 forward is the "straightforward fp32".
  for (int np : {1, 3}) {
    INFO("forward on " << np << " rank(s)");
    check_tensor("logits vs PyTorch", tool_logits(dir, np, out, tokens, vocab), fp64, fp32);
  }
}

TEST_CASE("import --from hf: bad input is one clear error", "[import]") {
  ScratchDir dir("import_hf_errors");
  const LlamaConfig c = tiny_config();
  const Tensors t = random_tensors(c, 3);
  const fs::path out = dir / "out.h5";
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  int case_index = 0;
  // Writes a directory, lets `damage` edit its model.safetensors (header and data), expects `needle`.
  auto expect = [&](const std::string& needle, const std::function<void(const fs::path&)>& damage, int np = 1,
                    const std::string& extra = "") {
    const fs::path src = dir / ("case" + std::to_string(case_index++));
    write_hf_dir(src, hf_config_json(c), c, t);
    damage(src);
    const RunResult r = run_tool(dir, np, import_hf_args(src, out) + extra);
    expect_clean_failure(r, out, needle);
  };
  // Rewrites model.safetensors from a builder whose header `edit` changes.
  auto with_header = [&](const std::function<void(json&)>& edit) {
    return [=](const fs::path& src) {
      SafetensorsBuilder b;
      for (const auto& spec : specs_of(c)) b.add(spec.name, "F32", spec.shape, f32_bytes(t.at(spec.name)));
      edit(b.header());
      write_file((src / "model.safetensors").string(), b.bytes());
    };
  };
  const std::string st = "model.safetensors";
  expect("header is not valid JSON", [&](const fs::path& src) {
    std::string bytes = slurp(src / st);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    bytes[8 + n - 1] = ' ';  // the header's closing brace
    write_file((src / st).string(), bytes);
  });
  expect("runs past the end of the file", [&](const fs::path& src) {
    const std::string bytes = slurp(src / st);
    write_file((src / st).string(), bytes.substr(0, 100));  // truncated inside the header
  });
  expect("run past the end of the data (", [&](const fs::path& src) {
    const std::string bytes = slurp(src / st);
    write_file((src / st).string(), bytes.substr(0, bytes.size() - 10));  // truncated data
  });
  expect(") overlap", with_header([&](json& h) {
    const uint64_t b = h[q]["data_offsets"][0].get<uint64_t>();
    h["model.layers.0.input_layernorm.weight"]["data_offsets"] = {b, b + 64};
  }));
  expect("data_offsets [", with_header([&](json& h) { h[q]["data_offsets"] = {1u << 30, (1u << 30) + 1024}; }));
  // The same bytes, the wrong shape.
  expect("tensor '" + q + "' in '" + (dir / ("case" + std::to_string(case_index)) / st).string() +
             "' has shape [8, 32], config.json implies [16, 16]",
         with_header([&](json& h) { h[q]["shape"] = {8, 32}; }));
  expect("is not a parameter of LlamaForCausalLM", [&](const fs::path& src) {
    SafetensorsBuilder b;
    for (const auto& spec : specs_of(c)) b.add(spec.name, "F32", spec.shape, f32_bytes(t.at(spec.name)));
    b.add("model.layers.0.self_attn.q_proj.bias", "F32", {16}, f32_bytes(std::vector<float>(16, 0.f)));
    write_file((src / "model.safetensors").string(), b.bytes());
  });
  expect("has no tensor 'model.norm.weight'", with_header([&](json& h) { h.erase("model.norm.weight"); }));
  expect("is F64: only F32, F16 and BF16", with_header([&](json& h) {
    h["model.norm.weight"]["dtype"] = "F64";
    h["model.norm.weight"]["shape"] = {8};  // same bytes
  }));
  expect("rope_scaling", [&](const fs::path& src) {
    json config = hf_config_json(c);
    config["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
    write_file((src / "config.json").string(), config.dump());
  });
  expect("has no config.json", [&](const fs::path& src) { fs::remove(src / "config.json"); });
  expect("PyTorch pickle weights", [&](const fs::path& src) {
    fs::remove(src / st);
    write_file((src / "pytorch_model.bin").string(), "PK");
  });
  // The index: a shard it names is missing; a tensor in another shard than it says; not in it.
  const fs::path sharded = dir / "sharded";
  HfDirOptions three;
  three.n_shards = 3;
  auto expect_index = [&](const std::string& needle, const std::function<void(const fs::path&)>& damage) {
    fs::remove_all(sharded);
    write_hf_dir(sharded, hf_config_json(c), c, t, three);
    damage(sharded);
    expect_clean_failure(run_tool(dir, 1, import_hf_args(sharded, out)), out, needle);
  };
  const std::string index = "model.safetensors.index.json";
  expect_index("which does not exist", [&](const fs::path& src) { fs::remove(src / "model-00002-of-00003.safetensors"); });
  expect_index("places it in", [&](const fs::path& src) {
    json i = json::parse(slurp(src / index));
    i["weight_map"]["model.embed_tokens.weight"] = "model-00002-of-00003.safetensors";
    write_file((src / index).string(), i.dump());
  });
  expect_index("is not in", [&](const fs::path& src) {
    json i = json::parse(slurp(src / index));
    i["weight_map"].erase("model.embed_tokens.weight");
    write_file((src / index).string(), i.dump());
  });
  expect_index("not a file in the model's directory", [&](const fs::path& src) {
    json i = json::parse(slurp(src / index));
    i["weight_map"]["model.embed_tokens.weight"] = "../elsewhere.safetensors";
    write_file((src / index).string(), i.dump());
  });
  // Options.
  write_hf_dir(dir / "ok", hf_config_json(c), c, t);
  expect_clean_failure(run_tool(dir, 2, import_hf_args(dir / "ok", out)), out, "runs on one process");
  expect_clean_failure(run_tool(dir, 1, import_hf_args(dir / "ok", out) + " --config lwm-7b"), out, "--config is for --from lwm-jax");
  expect_clean_failure(run_tool(dir, 1, "import --from gguf " + quoted(dir / "ok") + " --output " + quoted(out)), out, "--from must be hf, lwm-jax, diffusers-vq or lwm-vqgan");
  expect_clean_failure(run_tool(dir, 1, "import --from hf " + quoted(dir / "ok")), out, "required");
  expect_clean_failure(run_tool(dir, 1, import_hf_args(dir / "missing", out)), out, "is not a directory");
  write_file((dir / "not_a_model").string(), "not a sentencepiece model");
  expect_clean_failure(run_tool(dir, 1, "import --from hf " + quoted(dir / "ok") + " --output " + quoted(out) +
                                            " --tokenizer " + quoted(dir / "not_a_model")),
                       out, "not a SentencePiece model");
}

// ---- LWM JAX import -----------------------------------------------------------------------------------

TEST_CASE("import --from lwm-jax: the adjacent-pair model and its imported rotate-half twin give the same logits", "[import]") {
  ScratchDir dir("import_lwm");
  LlamaConfig text_config = tiny_config();
  text_config.rope_theta = 5e4;
  const FlaxTensors f = random_lwm(text_config, 9);
  // The stream holds LWM's vision tables: a vision model, its tokens text and vision ids mixed.
  LlamaConfig c = text_config;
  c.vision_vocab_size = kVisionVocab;
  const Tokens tokens = random_tokens(static_cast<int>(c.total_vocab_size()), 10);
  int vision_ids = 0;
  for (int32_t id : tokens.ids) vision_ids += id >= c.vocab_size;
  REQUIRE(vision_ids >= 4);
  const std::string config_json =
      json{{"num_attention_heads", c.num_attention_heads}, {"theta", c.rope_theta}, {"rms_norm_eps", c.rms_norm_eps},
           {"max_sequence_length", 8192}, {"bos_token_id", 1}, {"eos_token_id", 2}}.dump();
  write_file((dir / "c.json").string(), config_json);
  write_file((dir / "params").string(), lwm_stream(c, f, {}));
  const fs::path a = dir / "a.h5";
  const RunResult r = run_tool(dir, 1, "import --from lwm-jax " + quoted(dir / "params") + " --config " + quoted(dir / "c.json") +
                                           " --output " + quoted(a));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.stdout_text.find("inferred from the shapes: vocab_size 37, hidden_size 16, intermediate_size 40, num_hidden_layers 2, "
                           "num_key_value_heads 2, vision_vocab_size 11") != std::string::npos);
  {
    const H5File file(a);
    CHECK(get_i64(file.id(), "max_position_embeddings") == 8192);
    CHECK(get_i64(file.id(), "num_key_value_heads") == 2);
    CHECK(get_f64(file.id(), "rope_theta") == c.rope_theta);
    CHECK(get_str(file.id(), "torch_dtype") == "bfloat16");
    // The vision tables are the vision model's parameters: the embedding as is, the head transposed.
    CHECK(get_i64(file.id(), "vision_vocab_size") == kVisionVocab);
    CHECK(same_bits(read_f32(file.id(), "params/model.embed_vision.weight", {kVisionVocab, hsize_t(c.hidden_size)}), f.at("transformer/vte/embedding").values));
    CHECK(same_bits(read_f32(file.id(), "params/vision_head.weight", {kVisionVocab, hsize_t(c.hidden_size)}), transposed(f.at("vision_head/kernel"))));
  }
  // LWM's forward on LWM's weights (fp64 and a straightforward fp32) against ringworld's forward
  // of the imported file, by the rule of tests/test_support.h.
  const std::vector<double> fp64 = lwm_logits<double>(c, f, tokens), fp32 = lwm_logits<float>(c, f, tokens);
  for (int np : {1, 2}) {
    INFO("forward on " << np << " rank(s)");
    check_tensor("logits", tool_logits(dir, np, a, tokens, c.total_vocab_size()), fp64, fp32);
  }
  // Exported to Hugging Face: every tensor (the vision ones by their Hugging Face-style names),
  // vision_vocab_size in config.json; imported back, the same bits.
  {
    const RunResult e = run_tool(dir, 1, "export --to hf " + quoted(a) + " " + quoted(dir / "hf_out"));
    INFO(show(e));
    REQUIRE(e.exit_code == 0);
    const json config = json::parse(slurp(dir / "hf_out" / "config.json"));
    CHECK(config.at("vision_vocab_size") == kVisionVocab);
    CHECK(config.at("max_position_embeddings") == 8192);
    CHECK(config.at("rope_theta").get<double>() == c.rope_theta);
    CHECK(config.at("torch_dtype") == "bfloat16");
    CHECK(config.at("bos_token_id") == 1);
    CHECK(read_safetensors_file((dir / "hf_out" / "model.safetensors").string()).tensors.size() == specs_of(c).size());
    const RunResult back = run_tool(dir, 1, import_hf_args(dir / "hf_out", dir / "back.h5"));
    INFO(show(back));
    REQUIRE(back.exit_code == 0);
    check_same_bits(read_params(dir / "back.h5", c), read_params(a, c));
  }
  // Without the permutation the twin would differ by far more than the bound.
  const Reference unpermuted = ringworld_reference(c, lwm_as_hf_unpermuted(c, f), tokens);
  double scale = 0;
  for (double x : fp64) scale = std::max(scale, std::fabs(x));
  CHECK(max_abs_diff(unpermuted.fp64, fp64) > 1e-2 * scale);

  // The same model stacked by nn.scan: axis 0 as a train state with chunked float32 arrays and an
  // INI config; axis 1 in float16 (axis inferred). Both import to the same bits.
  const Tensors want = read_params(a, c);
  write_file((dir / "c.ini").string(), "num_attention_heads = 4\ntheta = 50000\nrms_norm_eps = 1e-6\nmax_position_embeddings = 8192\n");
  StreamOptions scan0;
  scan0.scan_axis = 0;
  scan0.chunk_elems = 300;  // chunks that cut across layers
  scan0.dtype = "float32";
  scan0.train_state = true;
  StreamOptions scan1;
  scan1.scan_axis = 1;
  scan1.dtype = "float16";
  int index = 0;
  for (const auto& [options, config] : {std::make_pair(scan0, std::string("c.ini")), std::make_pair(scan1, std::string("c.json"))}) {
    INFO("stacked on axis " << options.scan_axis << ", " << options.dtype);
    const fs::path file = dir / ("params_scan" + std::to_string(index)), out = dir / ("scan" + std::to_string(index++) + ".h5");
    write_file(file.string(), lwm_stream(c, f, options));
    const std::string spelled = options.train_state ? "trainstate_params::" + file.string() : file.string();
    const RunResult rs = run_tool(dir, 1, "import --from lwm-jax " + quoted(fs::path(spelled)) + " --config " + quoted(dir / config) +
                                              " --output " + quoted(out));
    INFO(show(rs));
    REQUIRE(rs.exit_code == 0);
    CHECK(rs.stdout_text.find("layer axis " + std::to_string(options.scan_axis)) != std::string::npos);
    check_same_bits(read_params(out, c), want);
  }
}

TEST_CASE("import --from lwm-jax: bad input is one clear error", "[import]") {
  ScratchDir dir("import_lwm_errors");
  const LlamaConfig c = tiny_config();
  const FlaxTensors f = random_lwm(c, 12);
  const fs::path out = dir / "out.h5";
  write_file((dir / "c.json").string(), json{{"num_attention_heads", 4}}.dump());
  auto run_on = [&](const std::string& stream, const std::string& config = " --config c.json") {
    write_file((dir / "params").string(), stream);
    return run_tool(dir, 1, "import --from lwm-jax " + quoted(dir / "params") + " --output " + quoted(out) +
                                (config == " --config c.json" ? " --config " + quoted(dir / "c.json") : config));
  };
  const std::string good = lwm_stream(c, f, {});
  // A bad ExtType: the wte array's ExtType code 1 changed to 5.
  {
    FlaxTensors g = f;
    std::string stream;
    for (const auto& [path, a] : g) {
      const int8_t ext = path == "transformer/wte/embedding" ? 5 : 1;
      stream += pack_jax_record(split_key(path), pack_jax_array(a.shape, "bfloat16", encode(a.values, "bfloat16"), ext));
    }
    expect_clean_failure(run_on(stream), out, "key 'transformer/wte/embedding'): msgpack ExtType 5 is not an array");
  }
  // A wrong shape: wq [16, 8] where the config needs [16, 16] (its bytes consistent).
  {
    FlaxTensors g = f;
    FlaxArray& wq = g["transformer/h/1/attention/wq/kernel"];
    wq.shape = {16, 8};
    wq.values.resize(128);
    expect_clean_failure(run_on(lwm_stream(c, g, {})), out, "'transformer/h/1/attention/wq/kernel' has shape [16, 8]");
  }
  // The bytes disagreeing with the shape inside the array.
  expect_clean_failure(run_on(pack_jax_record({"lm_head", "kernel"}, pack_jax_array({16, 37}, "bfloat16", std::string(100, '\0')))),
                       out, "shape [16, 37] of bfloat16 needs 592 x 2 bytes, the data has 100");
  expect_clean_failure(run_on(good.substr(0, good.size() - 7)), out, "is truncated");
  expect_clean_failure(run_on(good + pack_jax_record({"transformer", "h", "0", "attention", "wz", "kernel"},
                                                     pack_jax_array({2}, "float32", f32_bytes({1, 2})))),
                       out, "key 'transformer/h/0/attention/wz/kernel' is not part of an LWM LLaMA model");
  expect_clean_failure(run_on(good, ""), out, "num_attention_heads is not in");
  expect_clean_failure(run_on(good, " --config lwm-7b"), out, "preset lwm-7b gives vocab_size 32000, but transformer/wte/embedding [37, 16]");
  expect_clean_failure(run_on(good, " --config lwm-70b"), out, "unknown model preset 'lwm-70b'");
  {
    FlaxTensors g = f;
    g.erase("transformer/h/1/ffn_norm/kernel");
    expect_clean_failure(run_on(lwm_stream(c, g, {})), out, "has no key 'transformer/h/1/ffn_norm/kernel'");
  }
  // The vision tables: both or neither, their rows as the config says.
  {
    FlaxTensors g = f;
    g.erase("vision_head/kernel");
    expect_clean_failure(run_on(lwm_stream(c, g, {})), out, "has only one of transformer/vte/embedding and vision_head/kernel");
    g.erase("transformer/vte/embedding");
    write_file((dir / "v.json").string(), json{{"num_attention_heads", 4}, {"vision_vocab_size", 11}}.dump());
    expect_clean_failure(run_on(lwm_stream(c, g, {}), " --config " + quoted(dir / "v.json")), out,
                         "gives vision_vocab_size 11, but");
    write_file((dir / "v.json").string(), json{{"num_attention_heads", 4}, {"vision_vocab_size", 8}}.dump());
    expect_clean_failure(run_on(good, " --config " + quoted(dir / "v.json")), out,
                         "gives vision_vocab_size 8, but transformer/vte/embedding [11, 16]");
  }
  {
    FlaxTensors g = f;
    g["transformer/wte/embedding"].values[0] = 1;  // fine; the dtype is the problem
    std::string stream;
    for (const auto& [path, a] : g)
      stream += pack_jax_record(split_key(path), pack_jax_array(a.shape, path == "lm_head/kernel" ? "int16" : "bfloat16",
                                                                encode(a.values, "bfloat16")));
    expect_clean_failure(run_on(stream), out, "'lm_head/kernel' is int16: only float32, float16 and bfloat16");
  }
}

// ---- export --------------------------------------------------------------------------------------------

namespace {

// The checks every export directory passes: safetensors files whose offsets tile the data
// section exactly, metadata format "pt", 8-byte aligned headers, the index naming every tensor,
// no temporary files left; returns the tensors by name.
std::map<std::string, StoredTensor> check_export_dir(const fs::path& out, const LlamaConfig& c, const std::string& dtype) {
  std::map<std::string, StoredTensor> all;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    CHECK(name.find(".tmp") == std::string::npos);
    if (e.path().extension() == ".safetensors") files.push_back(name);
  }
  REQUIRE_FALSE(files.empty());
  const bool sharded = files.size() > 1;
  CHECK(fs::exists(out / "model.safetensors.index.json") == sharded);
  json weight_map;
  if (sharded) weight_map = json::parse(slurp(out / "model.safetensors.index.json")).at("weight_map");
  for (const auto& name : files) {
    INFO("file " << name);
    const StoredSafetensors s = read_safetensors_file((out / name).string());
    CHECK(s.header_length % 8 == 0);
    CHECK(s.metadata.value("format", "") == "pt");
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const auto& [tensor, st] : s.tensors) {
      ranges.emplace_back(st.begin, st.end);
      CHECK(st.dtype == dtype);
      if (sharded) CHECK(weight_map.value(tensor, "") == name);
      all[tensor] = st;
    }
    std::sort(ranges.begin(), ranges.end());
    uint64_t at = 0;
    for (const auto& [b, e] : ranges) {
      CHECK(b == at);
      at = e;
    }
    CHECK(8 + s.header_length + at == s.file_size);
  }
  for (const auto& spec : specs_of(c)) {
    INFO("tensor " << spec.name);
    REQUIRE(all.count(spec.name));
    CHECK(all.at(spec.name).shape == spec.shape);
  }
  CHECK(all.size() == specs_of(c).size());
  return all;
}

void write_param_file(const fs::path& path, const LlamaConfig& c, const Tensors& t) {
  H5Writer f(path);
  for (const auto& field : rw::model::config_fields()) {
    if (field.integer) f.attr_i64(field.name, c.*field.integer);
    else f.attr_f64(field.name, c.*field.real);
  }
  f.group("params");
  for (const auto& spec : specs_of(c)) f.f32("params/" + spec.name, std::vector<hsize_t>(spec.shape.begin(), spec.shape.end()), t.at(spec.name));
}

}  // namespace

TEST_CASE("export --to hf: fp32 round trip bit-exact, bf16/fp16 rounded to nearest even, checkpoints too", "[import][export]") {
  ScratchDir dir("export_hf");
  const LlamaConfig c = tiny_config();
  Tensors t = random_tensors(c, 4);
  // Unrounded values, and the special cases with their hand-worked binary16 patterns.
  Rng rng(5);
  for (auto& x : t["lm_head.weight"]) x = rng.symmetric(1.0f);
  struct Special {
    float x;
    uint16_t f16;
  };
  const Special specials[] = {{65520.0f, 0x7C00}, {65519.0f, 0x7BFF}, {1e-8f, 0x0000}, {3e-8f, 0x0001},
                              {-INFINITY, 0xFC00}, {-0.0f, 0x8000}, {1e5f, 0x7C00}, {std::ldexp(1023.5f, -24), 0x0400}};
  auto& embed = t["model.embed_tokens.weight"];
  for (std::size_t i = 0; i < std::size(specials); ++i) embed[i] = specials[i].x;
  embed[std::size(specials)] = std::nanf("");
  const fs::path params = dir / "p.h5";
  write_param_file(params, c, t);

  // fp32, sharded: export then import is the identity.
  const fs::path out32 = dir / "out32";
  RunResult r = run_tool(dir, 1, "export --to hf " + quoted(params) + " " + quoted(out32) + " --max-shard-size 3K");
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.stdout_text.find("max_position_embeddings not recorded: 2048") != std::string::npos);
  const auto stored32 = check_export_dir(out32, c, "F32");
  {
    const json config = json::parse(slurp(out32 / "config.json"));
    CHECK(config.at("architectures")[0] == "LlamaForCausalLM");
    CHECK(config.at("model_type") == "llama");
    CHECK(config.at("num_key_value_heads") == c.num_key_value_heads);
    CHECK(config.at("rope_theta").get<double>() == c.rope_theta);
    CHECK(config.at("rms_norm_eps").get<double>() == c.rms_norm_eps);
    CHECK(config.at("torch_dtype") == "float32");
    CHECK(config.at("tie_word_embeddings") == false);
    CHECK(config.at("max_position_embeddings") == 2048);
  }
  r = run_tool(dir, 1, import_hf_args(out32, dir / "back32.h5"));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  check_same_bits(read_params(dir / "back32.h5", c), t);

  // bf16 and fp16: exactly the nearest-even roundings; importing them back gives their values.
  for (const std::string dtype : {"bf16", "fp16"}) {
    INFO("--dtype " << dtype);
    const bool bf16 = dtype == "bf16";
    const fs::path out = dir / ("out_" + dtype);
    r = run_tool(dir, 1, "export --to hf " + quoted(params) + " " + quoted(out) + " --dtype " + dtype + " --max-position-embeddings 4096");
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    const auto stored = check_export_dir(out, c, bf16 ? "BF16" : "F16");
    CHECK(json::parse(slurp(out / "config.json")).at("torch_dtype") == (bf16 ? "bfloat16" : "float16"));
    CHECK(json::parse(slurp(out / "config.json")).at("max_position_embeddings") == 4096);
    for (const auto& spec : specs_of(c)) {
      INFO("tensor " << spec.name);
      const std::string want = bf16 ? to_bf16_bytes(t.at(spec.name)) : to_f16_bytes(t.at(spec.name));
      const std::string& got = stored.at(spec.name).bytes;
      REQUIRE(got.size() == want.size());
      // NaN: any quiet NaN of the same sign; everything else bit for bit.
      for (std::size_t i = 0; i < got.size() / 2; ++i) {
        uint16_t g, w;
        std::memcpy(&g, got.data() + 2 * i, 2);
        std::memcpy(&w, want.data() + 2 * i, 2);
        const float value = t.at(spec.name)[i];
        if (std::isnan(value)) {
          CHECK(std::isnan(from_u16_bytes(got.substr(2 * i, 2), bf16)[0]));
        } else {
          INFO("element " << i << " = " << value);
          REQUIRE(g == w);
        }
      }
    }
    if (!bf16)
      for (std::size_t i = 0; i < std::size(specials); ++i) {
        uint16_t g;
        std::memcpy(&g, stored.at("model.embed_tokens.weight").bytes.data() + 2 * i, 2);
        INFO("special " << specials[i].x);
        CHECK(g == specials[i].f16);
      }
    const fs::path back = dir / ("back_" + dtype + ".h5");
    r = run_tool(dir, 1, import_hf_args(out, back));
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    const Tensors got = read_params(back, c);
    for (const auto& spec : specs_of(c)) {
      const std::vector<float> want = from_u16_bytes(stored.at(spec.name).bytes, bf16);
      CHECK(same_bits(got.at(spec.name), want));
    }
    CHECK(get_str(H5File(back).id(), "torch_dtype") == (bf16 ? "bfloat16" : "float16"));
  }

  // A training checkpoint (ckpt convert of the parameter file) exports the same tensors.
  r = run_tool(dir, 1, "ckpt convert --input " + quoted(params) + " --output " + quoted(dir / "ck.h5"));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  r = run_tool(dir, 1, "export --to hf " + quoted(dir / "ck.h5") + " " + quoted(dir / "out_ck") + " --max-shard-size 3K");
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  const auto stored_ck = check_export_dir(dir / "out_ck", c, "F32");
  for (const auto& [name, st] : stored32) CHECK(stored_ck.at(name).bytes == st.bytes);
}

TEST_CASE("export --to hf: bad input is one clear error, nothing left behind", "[import][export]") {
  ScratchDir dir("export_hf_errors");
  const LlamaConfig c = tiny_config();
  const Tensors t = random_tensors(c, 6);
  const fs::path params = dir / "p.h5";
  write_param_file(params, c, t);
  const fs::path out = dir / "out";
  auto expect = [&](const std::string& args, const std::string& needle, int np = 1) {
    const RunResult r = run_tool(dir, np, args);
    expect_clean_failure(r, out / "model.safetensors", needle);
    if (fs::exists(out))
      for (const auto& e : fs::directory_iterator(out)) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  };
  const std::string base = "export --to hf " + quoted(params) + " " + quoted(out);
  expect(base + " --dtype fp8", "unknown --dtype 'fp8'");
  expect(base + " --max-shard-size 5Q", "--max-shard-size '5Q' is not a size");
  expect(base, "runs on one process", 2);
  expect("export --to gguf " + quoted(params) + " " + quoted(out), "--to must be hf");
  write_file((dir / "junk.h5").string(), "not hdf5");
  expect("export --to hf " + quoted(dir / "junk.h5") + " " + quoted(out), "cannot open");
  // Weights already in the directory.
  fs::create_directories(out);
  write_file((out / "model-00001-of-00002.safetensors").string(), "x");
  {
    const RunResult r = run_tool(dir, 1, base);
    INFO(show(r));
    CHECK(r.exit_code != 0);
    CHECK(tool_lines(r.stderr_text).size() == 1);
    CHECK(r.stderr_text.find("already holds model weights (model-00001-of-00002.safetensors)") != std::string::npos);
    CHECK(slurp(out / "model-00001-of-00002.safetensors") == "x");
    CHECK_FALSE(fs::exists(out / "config.json"));
  }
  fs::remove_all(out);
  // A corrupted tensor (a value changed after the checksum was written) is refused.
  const fs::path imported = dir / "imported.h5";
  write_hf_dir(dir / "hf", hf_config_json(c), c, t);
  REQUIRE(run_tool(dir, 1, import_hf_args(dir / "hf", imported)).exit_code == 0);
  {
    H5File f(imported, true);
    REQUIRE(f.ok());
    hid_t ds = H5Dopen2(f.id(), "params/model.norm.weight", H5P_DEFAULT);
    REQUIRE(ds >= 0);
    std::vector<float> v = t.at("model.norm.weight");
    v[3] += 1.0f;
    REQUIRE(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
    H5Dclose(ds);
  }
  expect("export --to hf " + quoted(imported) + " " + quoted(out), "tensor '/params/model.norm.weight' in '" + imported.string() + "' fails its checksum");
  CHECK_FALSE(fs::exists(out / "config.json"));
}

// ---- the tokenizer --------------------------------------------------------------------------------------

#ifdef RINGWORLD_HAVE_SENTENCEPIECE
TEST_CASE("import records tokenizer.model as prepare does; export copies it back", "[import][export]") {
  ScratchDir dir("import_tokenizer");
  if (std::system("command -v spm_train >/dev/null 2>&1 && command -v cksum >/dev/null 2>&1") != 0) {
    WARN("SKIPPED: spm_train or cksum not installed (Debian: apt-get install sentencepiece)");
    return;
  }
  // A small SentencePiece model (about 50 pieces) trained here.
  std::string corpus;
  Rng rng(3);
  const char* words[] = {"ring", "attention", "long", "context", "needle", "haystack", "rope", "theta", "model", "token"};
  for (int line = 0; line < 400; ++line) {
    for (int w = 0; w < 8; ++w) corpus += std::string(w ? " " : "") + words[rng.below(10)];
    corpus += "\n";
  }
  write_file((dir / "corpus.txt").string(), corpus);
  const std::string train = "spm_train --input=" + quoted(dir / "corpus.txt") + " --model_prefix=" + quoted(dir / "tok") +
                            " --vocab_size=50 --model_type=bpe --hard_vocab_limit=false --num_threads=1 >" +
                            quoted(dir / "spm.log") + " 2>&1";
  INFO(train << "\n" << slurp(dir / "spm.log"));
  REQUIRE(std::system(train.c_str()) == 0);
  REQUIRE(std::system(("cksum " + quoted(dir / "tok.model") + " > " + quoted(dir / "cksum.txt")).c_str()) == 0);
  std::istringstream cksum(slurp(dir / "cksum.txt"));
  std::string crc, bytes;
  cksum >> crc >> bytes;

  const LlamaConfig c = tiny_llama(64, 16, 40, 2, 4, 2, 2e5);
  const Tensors t = random_tensors(c, 7);
  write_hf_dir(dir / "hf", hf_config_json(c), c, t);
  fs::copy_file(dir / "tok.model", dir / "hf" / "tokenizer.model");
  const fs::path out = dir / "out.h5";
  RunResult r = run_tool(dir, 1, "import --from hf " + quoted(dir / "hf") + " --output " + quoted(out));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  const std::string recorded = get_str(H5File(out).id(), "tokenizer");
  CHECK(recorded == "sentencepiece:" + fs::absolute(dir / "hf" / "tokenizer.model").lexically_normal().string() + " (cksum " +
                        crc + " " + bytes + ")");
  r = run_tool(dir, 1, "export --to hf " + quoted(out) + " " + quoted(dir / "exported"));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.stdout_text.find("tokenizer.model copied from") != std::string::npos);
  CHECK(slurp(dir / "exported" / "tokenizer.model") == slurp(dir / "tok.model"));
  // A tokenizer with more pieces than the model has embeddings.
  const LlamaConfig small = tiny_config();  // vocab 37
  write_hf_dir(dir / "hf_small", hf_config_json(small), small, random_tensors(small, 8));
  expect_clean_failure(run_tool(dir, 1, "import --from hf " + quoted(dir / "hf_small") + " --output " + quoted(out) + "2 --tokenizer " +
                                            quoted(dir / "tok.model")),
                       out.string() + "2", "pieces but the model's vocabulary is 37");
}
#endif

// ---- VQGAN: import --from diffusers-vq, vqgan encode / decode (tests/fixtures/make_tiny_vqgan.py) --

namespace {

std::vector<int32_t> read_codes(const fs::path& path) {
  std::vector<int32_t> codes;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return codes;
  const hid_t ds = H5Dopen2(file, "/codes", H5P_DEFAULT);
  const hid_t space = H5Dget_space(ds);
  codes.resize(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, codes.data());
  H5Sclose(space);
  H5Dclose(ds);
  H5Fclose(file);
  return codes;
}

}  // namespace

// The fixture's images through the tool: codes equal PyTorch's on 1 and 2 ranks (rank r takes
// frames r, r + 2); decoded PNGs within 1 of round((G + 1) x 127.5), G PyTorch's float64 decode
// (the fp32 rule allows differences far below half a grey level, but a value near a rounding
// boundary may round either way); codes out of range and a pickle are refused. 6 runs, ~2 s CPU.
TEST_CASE("vqgan: import --from diffusers-vq, encode and decode match the PyTorch fixture", "[import][vqgan]") {
  ScratchDir dir("vqgan_cli");
  const fs::path fixture = fs::path(RW_FIXTURES_DIR) / "tiny_vqgan";
  const StoredSafetensors expected = read_safetensors_file((fixture / "expected.safetensors").string());
  std::vector<int32_t> want(expected.tensors.at("codes").bytes.size() / 4);
  std::memcpy(want.data(), expected.tensors.at("codes").bytes.data(), want.size() * 4);
  std::vector<double> decoded(expected.tensors.at("decoded_fp64").bytes.size() / 8);
  std::memcpy(decoded.data(), expected.tensors.at("decoded_fp64").bytes.data(), decoded.size() * 8);

  RunResult r = run_tool(dir, 1, "import --from diffusers-vq " + quoted(fixture) + " --image-size 16 --output " + quoted(dir / "vq.h5"));
  REQUIRE(r.exit_code == 0);
  const std::string images = quoted(fixture / "landscape.png") + " " + quoted(fixture / "portrait.jpg");
  // Three frames on two ranks: rank 0 takes frames 0 and 2, rank 1 frame 1.
  for (int np : {1, 2}) {
    const fs::path out = dir / ("codes" + std::to_string(np) + ".h5");
    r = run_tool(dir, np, "vqgan encode --weights " + quoted(dir / "vq.h5") + " --input " + images + " " +
                              quoted(fixture / "landscape.png") + " --output " + quoted(out) + " --batch 1");
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    std::vector<int32_t> three = want;
    three.insert(three.end(), want.begin(), want.begin() + 16);
    CHECK(read_codes(out) == three);
  }
  r = run_tool(dir, 2, "vqgan decode --weights " + quoted(dir / "vq.h5") + " --input " + quoted(dir / "codes2.h5") +
                           " --output " + quoted(dir / "frames"));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  for (int f = 0; f < 3; ++f) {
    const fs::path png = dir / "frames" / ("frame_00000" + std::to_string(f) + ".png");
    const rw::io::RgbImage image = rw::io::read_image(png.string());
    REQUIRE(image.width == 16);
    REQUIRE(image.height == 16);
    int worst = 0;
    const int g = f == 2 ? 0 : f;  // frame 2 repeats frame 0
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 256; ++i) {
        const double x = std::min(1.0, std::max(-1.0, decoded[static_cast<std::size_t>((g * 3 + c) * 256 + i)]));
        worst = std::max(worst, std::abs(int(image.pixels[static_cast<std::size_t>(i * 3 + c)]) - int(std::lround((x + 1) * 127.5))));
      }
    CHECK(worst <= 1);
  }

  // Codes out of range: one error, non-zero exit.
  {
    const hid_t file = H5Fopen((dir / "codes1.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t ds = H5Dopen2(file, "/codes", H5P_DEFAULT);
    std::vector<int32_t> codes = read_codes(dir / "codes2.h5");
    codes[20] = 32;
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, codes.data());
    H5Dclose(ds);
    H5Fclose(file);
  }
  r = run_tool(dir, 2, "vqgan decode --weights " + quoted(dir / "vq.h5") + " --input " + quoted(dir / "codes1.h5") +
                           " --output " + quoted(dir / "frames_bad"));
  CHECK(r.exit_code == 1);
  CHECK(r.stderr_text.find("frame 1 has code 32, outside [0, 32)") != std::string::npos);
  // LWM's pickled vqgan file (tests/fixtures/lwm_vqgan_pickle): imported; a broken one refused cleanly.
  const fs::path pickles = fs::path(RW_FIXTURES_DIR) / "lwm_vqgan_pickle";
  r = run_tool(dir, 1, "import --from lwm-vqgan " + quoted(pickles / "vqgan_p4.pkl") + " --config " + quoted(pickles / "config.json") +
                           " --image-size 8 --output " + quoted(dir / "vq_pickle.h5"));
  INFO(show(r));
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_text.find("read as a Python pickle") != std::string::npos);
  CHECK(r.stdout_text.find("(10914 parameters, float32)") != std::string::npos);
  CHECK(fs::exists(dir / "vq_pickle.h5"));
  write_file((dir / "vqgan.pkl").string(), std::string("\x80\x04\x95", 3) + std::string(30, 'x'));
  r = run_tool(dir, 1, "import --from lwm-vqgan " + quoted(dir / "vqgan.pkl") + " --config tiny --output " + quoted(dir / "x.h5"));
  CHECK(r.exit_code == 1);
  CHECK(r.stderr_text.find("vqgan.pkl': pickle byte 2: a frame of") != std::string::npos);
  CHECK(!fs::exists(dir / "x.h5"));
}

// prepare --vision on the tiny VQGAN: two images, a 3-frame video (made by `vqgan decode
// --format mp4`, and as a GIF) and a directory of 2 frame files become documents whose tokens are the layout of the codes `vqgan
// encode` gives for the same files: byte tokenizer (text 256), codebook 32, so vision token v is
// id 256 + v, <eof> 288, <eov> 289, vision vocabulary 256 (32 + 2 rounded up to 256). The
// expected documents are assembled here from the rule (vision_sequence.h), token by token, and
// the --vqgan run encodes them data-parallel on 2 ranks (its progress line counts rank 0's
// share). The same dataset from --codes (read collectively on 2 ranks). Bad input: a missing image, a bad
// record, frames of different sizes, neither --vqgan nor --codes, a text file given to vqgan
// encode. 15 runs, ~6 s CPU (the wall time is mpirun start-up: ~40 s under load).
TEST_CASE("prepare --vision: the tokens are the layout of vqgan encode's codes", "[import][vqgan][vision]") {
  ScratchDir dir("vision_prepare");
  const fs::path fixture = fs::path(RW_FIXTURES_DIR) / "tiny_vqgan";
  fs::copy_file(fixture / "landscape.png", dir / "landscape.png");
  fs::copy_file(fixture / "portrait.jpg", dir / "portrait.jpg");
  RunResult r = run_tool(dir, 1, "import --from diffusers-vq " + quoted(fixture) + " --image-size 16 --output " + quoted(dir / "vq.h5"));
  REQUIRE(r.exit_code == 0);
  const std::string vq = " --weights " + quoted(dir / "vq.h5");
  // Three frames (landscape, portrait, landscape) decoded into a video: MP4 and GIF.
  r = run_tool(dir, 1, "vqgan encode" + vq + " --input " + quoted(dir / "landscape.png") + " " + quoted(dir / "portrait.jpg") + " " +
                           quoted(dir / "landscape.png") + " --output " + quoted(dir / "three.h5"));
  REQUIRE(r.exit_code == 0);
  for (const char* format : {"mp4", "gif"}) {
    r = run_tool(dir, 2, "vqgan decode" + vq + " --input " + quoted(dir / "three.h5") + " --format " + format + " --fps 5 --output " +
                             quoted(dir / (std::string("clip.") + format)));
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    int frames = 0;
    rw::io::read_video((dir / (std::string("clip.") + format)).string(), 0, [&](const rw::io::RgbImage& im, double) {
      CHECK(im.width == 16);
      ++frames;
    });
    CHECK(frames == 3);
  }
  // A video as a directory of frame files.
  fs::create_directories(dir / "seq");
  fs::copy_file(dir / "landscape.png", dir / "seq" / "f0.png");
  {  // the landscape mirrored: a second frame of the same size
    rw::io::RgbImage im = rw::io::read_image((dir / "landscape.png").string());
    for (int64_t y = 0; y < im.height; ++y)
      for (int64_t x = 0; x < im.width / 2; ++x)
        for (int c = 0; c < 3; ++c)
          std::swap(im.pixels[static_cast<std::size_t>((y * im.width + x) * 3 + c)],
                    im.pixels[static_cast<std::size_t>((y * im.width + im.width - 1 - x) * 3 + c)]);
    rw::io::write_png((dir / "seq" / "f1.png").string(), im);
  }
  // The codes of the seven frames as `vqgan encode` gives them: images, the clip's 3, seq's 2.
  r = run_tool(dir, 2, "vqgan encode" + vq + " --input " + quoted(dir / "landscape.png") + " " + quoted(dir / "portrait.jpg") + " " +
                           quoted(dir / "clip.mp4") + " " + quoted(dir / "seq") + " --output " + quoted(dir / "codes.h5"));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  const std::vector<int32_t> codes = read_codes(dir / "codes.h5");
  REQUIRE(codes.size() == 7u * 16);
  auto frame = [&](int f) { return std::vector<int32_t>(codes.begin() + f * 16, codes.begin() + (f + 1) * 16); };

  write_file((dir / "records.jsonl").string(),
             "{\"text\": \"wide\", \"images\": [\"landscape.png\"]}\n"
             "\n"
             "{\"text\": \"tall\", \"images\": [\"portrait.jpg\"], \"task\": \"generate\"}\n"
             "{\"text\": \"clip\", \"video\": \"clip.mp4\"}\n"
             "{\"video\": \"clip.mp4\", \"max_frames\": 2}\n"
             "{\"text\": \"seq\", \"video\": \"seq\"}\n");
  // Expected, from the rule: "<vision>" bytes, per frame 16 codes (256 + v) then <eof> 288
  // (<eov> 289 after the last), "</vision>" bytes; caption: vision (mask 0) then text (1);
  // generate: text (0) then vision (1); vision alone: all 1.
  auto bytes = [](const std::string& t) { return std::vector<int32_t>(t.begin(), t.end()); };
  auto block = [&](const std::vector<int>& frames) {
    std::vector<int32_t> b = bytes("<vision>");
    for (std::size_t i = 0; i < frames.size(); ++i) {
      for (int32_t c : frame(frames[i])) b.push_back(256 + c);
      b.push_back(i + 1 == frames.size() ? 289 : 288);
    }
    const std::vector<int32_t> end = bytes("</vision>");
    b.insert(b.end(), end.begin(), end.end());
    return b;
  };
  struct Doc {
    std::vector<int32_t> tokens;
    std::vector<uint8_t> mask;
    void add(const std::vector<int32_t>& ids, uint8_t m) {
      tokens.insert(tokens.end(), ids.begin(), ids.end());
      mask.insert(mask.end(), ids.size(), m);
    }
  };
  std::vector<Doc> want(5);
  want[0].add(block({0}), 0);
  want[0].add(bytes("wide"), 1);
  want[1].add(bytes("tall"), 0);
  want[1].add(block({1}), 1);
  want[2].add(block({2, 3, 4}), 0);
  want[2].add(bytes("clip"), 1);
  want[3].add(block({2, 4}), 1);  // np.linspace(0, 2, 2) = [0, 2]
  want[4].add(block({5, 6}), 0);
  want[4].add(bytes("seq"), 1);

  auto check_dataset = [&](const fs::path& path) {
    rw::io::TokenDatasetReader reader(path.string());
    CHECK(reader.info().vocab_size == 512);
    CHECK(reader.info().vision_vocab_size == 256);
    CHECK(reader.info().has_loss_mask);
    REQUIRE(reader.info().n_docs == 5);
    std::vector<int32_t> tokens;
    std::vector<uint8_t> mask;
    for (int d = 0; d < 5; ++d) {
      INFO("document " << d);
      reader.read_document(d, &tokens, &mask);
      CHECK(tokens == want[d].tokens);
      CHECK(mask == want[d].mask);
    }
  };
  const std::string records = " --vision --tokenizer byte --input " + quoted(dir / "records.jsonl");
  // --fps 5: the clip's own rate (its 3 frames again); it does not apply to the frame directory.
  // On 2 ranks: the records' 9 frames (the clip's are met twice) encoded data-parallel: rank 0
  // frames 0, 2, 4, 6, 8, rank 1 the others.
  r = run_tool(dir, 2, "prepare" + records + " --fps 5 --vqgan " + quoted(dir / "vq.h5") + " --output " + quoted(dir / "data_vq.h5"));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.stdout_text.find("5 documents from 5 records") != std::string::npos);
  CHECK(r.stderr_text.find("rank 0: encoded its 5 frames of the 9 on 2 ranks") != std::string::npos);
  check_dataset(dir / "data_vq.h5");
  r = run_tool(dir, 2, "prepare" + records + " --codes " + quoted(dir / "codes.h5") + " --output " + quoted(dir / "data_codes.h5"));
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  check_dataset(dir / "data_codes.h5");

  // Bad input: one message naming the record, no output.
  const fs::path out = dir / "bad.h5";
  auto bad = [&](const std::string& line, const std::string& needle) {
    write_file((dir / "bad.jsonl").string(), "{\"text\": \"ok\", \"images\": [\"landscape.png\"]}\n" + line + "\n");
    expect_clean_failure(run_tool(dir, 2, "prepare --vision --tokenizer byte --input " + quoted(dir / "bad.jsonl") + " --vqgan " +
                                              quoted(dir / "vq.h5") + " --output " + quoted(out)),
                         out, needle);
  };
  bad("{\"text\": \"x\", \"images\": [\"missing.png\"]}", "bad.jsonl:2: ");
  bad("{\"text\": \"x\", \"images\": [\"missing.png\"]}", "missing.png");
  bad("{\"text\": \"x\"}", "bad.jsonl:2: the record has neither \"images\" nor \"video\"");
  bad("{\"text\": \"x\", \"video\": \"clip.mp4\", \"task\": \"answer\"}", "the task must be");
  fs::create_directories(dir / "mixed");
  fs::copy_file(dir / "landscape.png", dir / "mixed" / "f0.png");
  fs::copy_file(dir / "portrait.jpg", dir / "mixed" / "f1.jpg");
  bad("{\"video\": \"mixed\"}", "is 20 x 26; the video's first frame");
  expect_clean_failure(run_tool(dir, 1, "prepare" + records + " --output " + quoted(out)), out, "--vision needs --vqgan VQ.h5 or --codes");
  // vqgan encode: a file that is neither an image nor a video.
  write_file((dir / "notes.txt").string(), "just text\n");
  expect_clean_failure(run_tool(dir, 2, "vqgan encode" + vq + " --input " + quoted(dir / "notes.txt") + " --output " + quoted(out)), out,
                       "notes.txt' is not a video libavformat can read");
  write_file((dir / "other.jsonl").string(), "{\"images\": [\"other.png\"]}\n");
  fs::copy_file(dir / "landscape.png", dir / "other.png");
  expect_clean_failure(run_tool(dir, 1, "prepare --vision --tokenizer byte --input " + quoted(dir / "other.jsonl") + " --codes " +
                                            quoted(dir / "codes.h5") + " --output " + quoted(out)),
                       out, "no frame '");
}
