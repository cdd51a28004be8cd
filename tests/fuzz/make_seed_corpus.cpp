// make_seed_corpus.cpp: writes the HDF5 seed inputs of the fuzz targets with ringworld's own
// writers, so the seeds are exactly the files the tools write (small shapes: each a few KiB).
//   make_seed_corpus DIR    writes DIR/<target>/seed_*.h5 (files) and prog_*.bin (programs that
//                           build files: h5_builder.h)
// The committed seeds in tests/fuzz/corpus/ came from this program; rerun it after a format
// change. The text targets (jsonl, config) have hand-written seeds.
// The import target's seeds (DIR/import/seed_*.bin: a mode byte, then files joined by
// kPartSeparator; fuzz_import.cpp) are tiny models written by the tests' own writers
// (tests/model_files_support.h: safetensors, LWM's msgpack records; LWM's pickle: pickle_tree
// below) and our config writer (seed_formats_pickle_cases_p*.bin are mode 4 + the pickles of
// tests/fixtures/lwm_vqgan_pickle/cases_p*.pkl, copied); its
// SentencePiece seeds (seed_tokenizer_*.bin) are models trained by spm_train on a few lines (40
// BPE pieces; 300 with byte fallback; identity normalization keeps them small), committed as
// made. The image target's seeds: the fixtures' landscape.png and portrait.jpg, copied, and the
// PNG (grey, RGBA, 16-bit grey + alpha, palette) and JPEG (grey, progressive) variants made here.
#include <png.h>

#include <cstdio>  // before jpeglib.h, which uses size_t and FILE
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <jpeglib.h>

#include "io/attn_io.h"
#include "io/checkpoint.h"
#include "io/h5_file.h"
#include "io/params_io.h"
#include "io/token_dataset.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "io/hf_config.h"
#include "io/model_import.h"
#include "io/param_file_writer.h"
#include "io/vqgan_codes.h"
#include "src/train/fsdp_params.h"
#include "src/vision/vqgan_import.h"
#include "src/vision/vqgan_weights.h"
#include "tests/fuzz/h5_builder.h"
#include "tests/model_files_support.h"

namespace {

void attn_seed(const std::string& path, bool extras) {
  rw::io::AttnProblem p;
  p.batch = 1;
  p.seq_len = 8;
  p.heads = 2;
  p.kv_heads = 1;
  p.head_dim = 2;
  p.has_dout = p.has_positions = p.has_segment_ids = extras;
  const auto runs = rw::local_token_runs(rw::Layout::contiguous, p.seq_len, 1, 0);
  rw::io::AttnShard s;
  s.q.resize(p.batch * p.seq_len * p.heads * p.head_dim);
  s.k.resize(p.batch * p.seq_len * p.kv_heads * p.head_dim);
  s.v.resize(s.k.size());
  s.dout.resize(s.q.size());
  for (std::size_t i = 0; i < s.q.size(); ++i) s.q[i] = s.dout[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
  for (std::size_t i = 0; i < s.k.size(); ++i) s.k[i] = s.v[i] = 0.125f * static_cast<float>(i % 5);
  for (int t = 0; t < p.seq_len; ++t) {
    s.pos.push_back(t % 4);
    s.seg.push_back(t / 4);
  }
  rw::io::write_attn_input(path, p, runs, s);
}

void forward_seed(const std::string& path, bool extras) {
  const int64_t batch = 2, seq = 8;
  const auto runs = rw::local_token_runs(rw::Layout::contiguous, seq, 1, 0);
  std::vector<int32_t> tokens, targets, segments, positions;
  std::vector<float> weights;
  for (int64_t i = 0; i < batch * seq; ++i) {
    tokens.push_back(static_cast<int32_t>((7 * i) % 256));
    targets.push_back(i % seq == seq - 1 ? -1 : static_cast<int32_t>((7 * i + 7) % 256));
    segments.push_back(static_cast<int32_t>((i % seq) / 4));
    positions.push_back(static_cast<int32_t>(i % 4));
    weights.push_back(i % 3 ? 1.f : 0.5f);
  }
  rw::io::write_file_atomically(path, [&](rw::io::H5File& f) {
    using rw::io::ElementType;
    f.write_token_runs("tokens", {batch, seq}, 1, runs, ElementType::i32, tokens.data());
    if (!extras) return;
    f.write_token_runs("targets", {batch, seq}, 1, runs, ElementType::i32, targets.data());
    f.write_token_runs("loss_weights", {batch, seq}, 1, runs, ElementType::f32, weights.data());
    f.write_token_runs("segment_ids", {batch, seq}, 1, runs, ElementType::i32, segments.data());
    f.write_token_runs("positions", {batch, seq}, 1, runs, ElementType::i32, positions.data());
  });
}

void dataset_seed(const std::string& path, bool with_mask) {
  rw::io::TokenDatasetWriter w(path, 256, "byte", with_mask);
  for (const char* doc : {"ring", "attention over a ring of ranks", "x", "blockwise"}) {
    std::vector<int32_t> ids;
    std::vector<uint8_t> mask;
    for (const char* c = doc; *c; ++c) {
      ids.push_back(static_cast<unsigned char>(*c));
      mask.push_back(c == doc ? 0 : 1);
    }
    w.add_document(ids, with_mask ? &mask : nullptr);
  }
  w.finish();
}

rw::model::LlamaConfig micro_config() {
  rw::model::LlamaConfig c;
  c.vocab_size = 16;
  c.hidden_size = 4;
  c.intermediate_size = 8;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.validate();
  return c;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "make_seed_corpus: cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

std::vector<uint8_t> le(uint64_t value, int n_bytes) {
  std::vector<uint8_t> out;
  for (int i = 0; i < n_bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
  return out;
}

uint8_t index_of(const std::vector<std::string>& list, const std::string& name) {
  for (std::size_t i = 0; i < list.size(); ++i)
    if (list[i] == name) return static_cast<uint8_t>(i);
  std::fprintf(stderr, "make_seed_corpus: no name %s\n", name.c_str());
  std::exit(1);
}

// Inputs that once found a defect, written as programs (h5_builder.h) so each states its case.
void regression_programs(const std::string& dir) {
  using T = rw::fuzz::H5Program::Type;
  const rw::fuzz::H5Names& ckpt = rw::fuzz::checkpoint_names();
  // Attributes that are arrays where a scalar is expected: `ckpt info` (describe_checkpoint) read
  // an integer array into one int64 on the stack and a string array into one string's buffer
  // (stack and heap buffer overflows); read_checkpoint_state read "format" the same way.
  write_bytes(dir + "/checkpoint/regress_array_attributes.bin",
              rw::fuzz::H5Program()
                  .root_attribute(index_of(ckpt.attributes, "format"), T::listed_str, {0}, 3)
                  .root_attribute(index_of(ckpt.attributes, "vocab_size"), T::i64, le(16, 8), 3)
                  .root_attribute(index_of(ckpt.attributes, "rms_norm_eps"), T::f64, le(0, 8), 2)
                  .root_attribute(index_of(ckpt.attributes, "stage"), T::str8, {'a', 'b'}, 3)
                  .bytes());
  // The same for a token dataset's tokenizer attribute.
  std::vector<uint8_t> offsets = le(0, 8), end = le(6, 8);
  offsets.insert(offsets.end(), end.begin(), end.end());
  write_bytes(dir + "/token_dataset/regress_tokenizer_array.bin",
              rw::fuzz::H5Program()
                  .dataset(0, T::i32, {6}, le(104, 4))
                  .dataset(1, T::i64, {2}, offsets)
                  .root_attribute(0, T::i64, le(256, 8))
                  .root_attribute(1, T::str8, {'b', 'y', 't', 'e'}, 3)
                  .bytes());
}

// Structured seeds (h5_builder.h): programs that build valid files for each reader.
void program_seeds(const std::string& dir) {
  using T = rw::fuzz::H5Program::Type;
  const std::vector<uint8_t> small_floats = {0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x00, 0xbf};  // 0.25, -0.5
  write_bytes(dir + "/attn_input/prog_qkv.bin", rw::fuzz::H5Program()
                                                    .dataset(0, T::f32, {1, 8, 2, 2}, small_floats)
                                                    .dataset(1, T::f32, {1, 8, 1, 2}, small_floats)
                                                    .dataset(2, T::f32, {1, 8, 1, 2}, small_floats)
                                                    .dataset(4, T::i32, {1, 8}, le(3, 4))
                                                    .bytes());
  write_bytes(dir + "/forward_input/prog_tokens.bin", rw::fuzz::H5Program()
                                                          .dataset(0, T::i32, {2, 8}, le(65, 4))
                                                          .dataset(2, T::f32, {2, 8}, {0, 0, 0x80, 0x3f})
                                                          .bytes());
  std::vector<uint8_t> offsets = le(0, 8), more = le(2, 8), last = le(6, 8);
  offsets.insert(offsets.end(), more.begin(), more.end());
  offsets.insert(offsets.end(), last.begin(), last.end());
  write_bytes(dir + "/token_dataset/prog_dataset.bin", rw::fuzz::H5Program()
                                                           .dataset(0, T::i32, {6}, le(104, 4))
                                                           .dataset(1, T::i64, {3}, offsets)
                                                           .root_attribute(0, T::i64, le(256, 8))
                                                           .string_attribute(1, 0)
                                                           .bytes());
  // A checkpoint of a model small enough that every tensor is a few floats, checksummed.
  const rw::fuzz::H5Names& names = rw::fuzz::checkpoint_names();
  rw::model::LlamaConfig c;
  c.vocab_size = 4;
  c.hidden_size = 2;
  c.intermediate_size = 2;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 1;
  c.num_key_value_heads = 1;
  c.validate();
  rw::fuzz::H5Program p;
  for (const auto& f : rw::model::config_fields()) {
    if (f.integer) p.root_attribute(index_of(names.attributes, f.name), T::i64, le(static_cast<uint64_t>(c.*f.integer), 8));
    else {
      uint64_t bits;
      const double value = c.*f.real;
      std::memcpy(&bits, &value, 8);
      p.root_attribute(index_of(names.attributes, f.name), T::f64, le(bits, 8));
    }
  }
  p.string_attribute(index_of(names.attributes, "format"), 0).root_attribute(index_of(names.attributes, "format_version"), T::i64, le(1, 8));
  for (const char* f : {"step", "tokens_seen", "stage_index", "seq_len", "world_size", "dp", "sp"})
    p.root_attribute(index_of(names.attributes, f), T::i64, le(1, 8));
  p.string_attribute(index_of(names.attributes, "stage"), 3).string_attribute(index_of(names.attributes, "layout"), 1);
  for (const char* group : {"params/", "optim/m/", "optim/v/"})
    for (const auto& unit : rw::model::parameter_units(c))
      for (const auto& t : unit.tensors) {
        std::vector<uint8_t> dims(t.shape.begin(), t.shape.end());
        p.dataset(index_of(names.datasets, group + t.name), T::f32, dims, small_floats).checksum();
      }
  p.dataset(index_of(names.datasets, "rng/seed"), T::u64, {}, le(7, 8)).dataset(index_of(names.datasets, "data/cursor"), T::u64, {}, le(0, 8));
  write_bytes(dir + "/checkpoint/prog_checkpoint.bin", p.bytes());
  regression_programs(dir);
}

// ---- the import target (fuzz_import.cpp) -------------------------------------------------------

std::string float_bytes(int64_t n, float scale) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = scale * static_cast<float>(i % 5 - 2);
  return rw::test::f32_bytes(v);
}

std::string dtype_bytes(const std::string& dtype, int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = 0.25f * static_cast<float>(i % 5 - 2);
  if (dtype == "F32" || dtype == "float32") return rw::test::f32_bytes(v);
  if (dtype == "F16" || dtype == "float16") return rw::test::to_f16_bytes(v);
  return rw::test::to_bf16_bytes(v);
}

std::string with_mode(char mode, const std::vector<std::string>& parts) {
  return std::string(1, mode) + rw::fuzz::join_parts(parts);
}

void write_text(const std::string& path, const std::string& bytes) {
  write_bytes(path, std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

// vocab 8, hidden 4 (2 heads of 2, 1 KV head), intermediate 4, one layer.
rw::io::HfModelConfig tiny_llama() {
  rw::io::HfModelConfig c;
  c.llama.vocab_size = 8;
  c.llama.hidden_size = 4;
  c.llama.intermediate_size = 4;
  c.llama.num_hidden_layers = 1;
  c.llama.num_attention_heads = 2;
  c.llama.num_key_value_heads = 1;
  c.llama.validate();
  c.max_position_embeddings = 64;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

// diffusers' VQModel config.json of the smallest VQ model (one level, widths of 2, one channel).
std::string minimal_vq_config() {
  return "{\"_class_name\": \"VQModel\", \"block_out_channels\": [2], \"layers_per_block\": 1, \"latent_channels\": 1, "
         "\"num_vq_embeddings\": 3, \"vq_embed_dim\": 1, \"norm_num_groups\": 1, \"in_channels\": 1, \"out_channels\": 1, "
         "\"down_block_types\": [\"DownEncoderBlock2D\"], \"up_block_types\": [\"UpDecoderBlock2D\"], "
         "\"act_fn\": \"silu\", \"norm_type\": \"group\", \"mid_block_add_attention\": false}";
}

// A pickle (protocol 4 opcodes, no framing) of a dict tree of float32 numpy arrays, as Python
// writes LWM's vqgan file: each array numpy's _reconstruct + BUILD (1, shape, dtype, False, data).
std::string pickle_tree(const std::map<std::string, std::pair<std::vector<int64_t>, int64_t>>& arrays) {
  auto text = [](const std::string& t) { return "\x8c" + std::string(1, static_cast<char>(t.size())) + t; };
  auto u32 = [](uint64_t v) {
    std::string b;
    for (int i = 0; i < 4; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
    return b;
  };
  std::function<std::string(const std::string&)> dict = [&](const std::string& prefix) {
    std::string out = "}(";
    std::set<std::string> children;
    for (const auto& [key, array] : arrays) {
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string rest = key.substr(prefix.size());
      const std::size_t slash = rest.find('/');
      if (slash != std::string::npos) {
        if (children.insert(rest.substr(0, slash)).second) out += text(rest.substr(0, slash)) + dict(prefix + rest.substr(0, slash + 1));
        continue;
      }
      const auto& [shape, count] = array;
      out += text(rest) + "cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK" + std::string(1, '\0') + "\x85" "C\x01" "b\x87R(K\x01(";
      for (int64_t d : shape) out += "J" + u32(static_cast<uint64_t>(d));
      out += "tcnumpy\ndtype\n" + text("f4") + "\x89\x88\x87R(K\x03" + text("<") + "NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK" +
             std::string(1, '\0') + "tb\x89" "B" + u32(static_cast<uint64_t>(count) * 4) + std::string(static_cast<std::size_t>(count) * 4, '\0') + "tb";
    }
    return out + "u";
  };
  return std::string("\x80\x04", 2) + dict("") + ".";
}

void import_seeds(const std::string& dir) {
  const rw::io::HfModelConfig llama = tiny_llama();
  const std::string config_json = rw::io::make_hf_config_json(llama, "bfloat16");
  // hf: one file, dtypes mixed; sharded with an index; tied embeddings (no lm_head).
  rw::test::SafetensorsBuilder one, shard1, shard2, tied;
  const char* dtypes[] = {"BF16", "F32", "F16"};
  int k = 0;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (const auto& unit : rw::model::parameter_units(llama.llama))
    for (const auto& t : unit.tensors) {
      const std::string dtype = dtypes[k++ % 3];
      one.add(t.name, dtype, t.shape, dtype_bytes(dtype, t.count()));
      (k % 2 ? shard1 : shard2).add(t.name, "BF16", t.shape, dtype_bytes("BF16", t.count()));
      index["weight_map"][t.name] = k % 2 ? "model-00001.safetensors" : "model-00002.safetensors";
      if (t.name != "lm_head.weight") tied.add(t.name, "F16", t.shape, dtype_bytes("F16", t.count()));
    }
  write_text(dir + "/import/seed_hf.bin", with_mode(0, {config_json, one.bytes()}));
  write_text(dir + "/import/seed_hf_sharded.bin", with_mode(0, {config_json, index.dump(), shard1.bytes(), shard2.bytes()}));
  rw::io::HfModelConfig tied_config = llama;
  tied_config.tie_word_embeddings = true;
  std::string tied_json = rw::io::make_hf_config_json(tied_config, "float16");
  tied_json.replace(tied_json.find("\"tie_word_embeddings\": false"), 28, "\"tie_word_embeddings\": true ");
  write_text(dir + "/import/seed_hf_tied.bin", with_mode(0, {tied_json, tied.bytes()}));

  // lwm-jax: per-layer keys (bfloat16, to_bytes bins), and a train state with the layers stacked
  // on axis 1, one chunked array, and the vision tables.
  const rw::model::LlamaConfig& c = llama.llama;
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size, kv = c.num_key_value_heads * c.head_dim();
  const std::vector<std::pair<std::string, std::vector<int64_t>>> layer_keys = {
      {"attention/wq/kernel", {hidden, hidden}},    {"attention/wk/kernel", {hidden, kv}},
      {"attention/wv/kernel", {hidden, kv}},        {"attention/wo/kernel", {hidden, hidden}},
      {"feed_forward/w1/kernel", {hidden, inter}},  {"feed_forward/w2/kernel", {inter, hidden}},
      {"feed_forward/w3/kernel", {hidden, inter}},  {"attention_norm/kernel", {hidden}},
      {"ffn_norm/kernel", {hidden}}};
  auto count = [](const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  };
  auto array = [&](const std::vector<int64_t>& shape, const std::string& dtype) {
    return rw::test::pack_jax_array(shape, dtype, dtype_bytes(dtype, count(shape)));
  };
  std::string per_layer, stacked;
  auto add = [](std::string& stream, const std::string& key, const std::string& value, bool as_bin = true) {
    stream += rw::test::pack_jax_record(rw::test::split_key(key), value, as_bin);
  };
  add(per_layer, "transformer/wte/embedding", array({vocab, hidden}, "bfloat16"));
  for (const auto& [key, shape] : layer_keys) add(per_layer, "transformer/h/0/" + key, array(shape, "bfloat16"));
  add(per_layer, "transformer/ln_f/kernel", array({hidden}, "float32"));
  add(per_layer, "lm_head/kernel", array({hidden, vocab}, "float16"), false);
  const std::string lwm_config = "{\"num_attention_heads\": 2, \"theta\": 10000.0, \"max_sequence_length\": 64}";
  write_text(dir + "/import/seed_lwm_jax.bin", with_mode(1, {per_layer, lwm_config}));
  const int64_t layers = 2;
  add(stacked, "params/params/transformer/wte/embedding",
      rw::test::pack_jax_chunked({vocab, hidden}, "float32", dtype_bytes("float32", vocab * hidden), 4, 12));
  for (const auto& [key, shape] : layer_keys) {
    std::vector<int64_t> s = shape;
    s.insert(s.begin() + 1, layers);
    add(stacked, "params/params/transformer/h/scan_decoder/" + key, array(s, "float32"));
  }
  add(stacked, "params/params/transformer/ln_f/kernel", array({hidden}, "float32"));
  add(stacked, "params/params/lm_head/kernel", array({hidden, vocab}, "float32"));
  add(stacked, "params/params/transformer/vte/embedding", array({3, hidden}, "float32"));
  add(stacked, "params/params/vision_head/kernel", array({hidden, 3}, "float32"));
  add(stacked, "opt_state/step", std::string(1, '\x07'), false);
  const std::string stacked_config = "{\"num_attention_heads\": 2, \"num_hidden_layers\": 2, \"param_scan_axis\": 1}";
  write_text(dir + "/import/seed_lwm_jax_stacked.bin", with_mode(1, {stacked, stacked_config}));

  // diffusers-vq and lwm-vqgan: the smallest VQ model (one level, one channel), and tiny-1.
  const std::string vq_config = minimal_vq_config();
  const rw::vision::VqganConfig vq = rw::vision::parse_diffusers_vq_config(vq_config, "seed", 16, nullptr);
  rw::test::SafetensorsBuilder vq_weights;
  k = 0;
  for (const auto& t : rw::vision::vqgan_tensors(vq)) {
    const std::string dtype = dtypes[k++ % 3];
    vq_weights.add(t.name, dtype, t.shape, dtype_bytes(dtype, t.count()));
  }
  write_text(dir + "/import/seed_diffusers_vq.bin", with_mode(2, {vq_config, vq_weights.bytes()}));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& t : rw::vision::vqgan_tensors(vq)) shapes[t.name] = t.shape;
  std::string vq_stream;
  for (const auto& [name, key] : rw::vision::lwm_vqgan_names(vq)) {
    std::vector<int64_t> s = shapes[name];
    if (s.size() == 4) s = {s[2], s[3], s[1], s[0]};  // flax HWIO
    add(vq_stream, "params/" + key, array(s, "float32"));
  }
  write_text(dir + "/import/seed_lwm_vqgan.bin", with_mode(3, {vq_stream, vq_config}));
  std::map<std::string, std::pair<std::vector<int64_t>, int64_t>> vq_pickle;  // LWM's form: a pickled dict tree
  for (const auto& [name, key] : rw::vision::lwm_vqgan_names(vq)) {
    std::vector<int64_t> s = shapes[name];
    if (s.size() == 4) s = {s[2], s[3], s[1], s[0]};
    int64_t count = 1;
    for (int64_t d : s) count *= d;
    vq_pickle[key] = {s, count};
  }
  write_text(dir + "/import/seed_lwm_vqgan_pickle.bin", with_mode(3, {pickle_tree(vq_pickle), vq_config}));
  write_text(dir + "/import/seed_formats_pickle.bin", std::string(1, 4) + pickle_tree(vq_pickle));

  // formats: the parsers alone on a safetensors file, a stream, each config.
  write_text(dir + "/import/seed_formats_safetensors.bin", std::string(1, 4) + one.bytes());
  write_text(dir + "/import/seed_formats_stream.bin", std::string(1, 4) + stacked);
  write_text(dir + "/import/seed_formats_hf_config.bin", std::string(1, 4) + config_json);
  write_text(dir + "/import/seed_formats_vq_config.bin", std::string(1, 4) + vq_config);
  write_text(dir + "/import/seed_formats_index.bin", std::string(1, 4) + index.dump());
}

// ---- the weight-file target (fuzz_weight_files.cpp) ---------------------------------------------

void weight_file_seeds(const std::string& dir) {
  // A parameter file as `import` writes it (with its attributes).
  const rw::io::HfModelConfig llama = tiny_llama();
  rw::io::ParamFileWriter w(dir + "/weight_files/seed_params.h5", llama.llama);
  w.add_attribute("max_position_embeddings", llama.max_position_embeddings);
  w.add_attribute("bos_token_id", llama.bos_token_id);
  w.add_attribute("torch_dtype", std::string("bfloat16"));
  w.add_attribute("source", std::string("hf:/models/tiny"));
  for (const auto& unit : rw::model::parameter_units(llama.llama))
    for (const auto& t : unit.tensors) {
      const std::string b = float_bytes(t.count(), 0.5f);
      w.write_param(t.name, reinterpret_cast<const float*>(b.data()));
    }
  w.finish();
  // VQ.h5 of the smallest VQGAN (the import seeds' one).
  const rw::vision::VqganConfig vq = rw::vision::parse_diffusers_vq_config(minimal_vq_config(), "seed", 16, nullptr);
  rw::vision::write_vqgan_weights(dir + "/weight_files/seed_vqgan.h5", vq, "seed", [](const rw::vision::VqganTensor& t, float* out) {
    for (int64_t i = 0; i < t.count(); ++i) out[i] = 0.125f * static_cast<float>(i % 7 - 3);
  });
  // CODES.h5: 3 frames of 2 x 2 codes of a codebook of 32.
  rw::io::VqganCodesHeader h;
  h.frames = 3;
  h.size = 2;
  h.codebook_size = 32;
  h.weights = "VQ.h5";
  h.sources = {"a.png", "", "b.jpg"};
  std::vector<int32_t> codes(12);
  for (int i = 0; i < 12; ++i) codes[i] = (7 * i) % 32;
  rw::io::write_vqgan_codes(dir + "/weight_files/seed_codes.h5", h, rw::TokenRun{0, 3, 1}, codes.data());

  // The same as structured programs (h5_builder.h; what make fuzz-short mutates).
  using T = rw::fuzz::H5Program::Type;
  const rw::fuzz::H5Names& names = rw::fuzz::weight_file_names();
  const std::vector<uint8_t> small_floats = {0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x00, 0xbf};  // 0.25, -0.5
  rw::fuzz::H5Program params;
  for (const auto& f : rw::model::config_fields()) {
    if (f.integer) {
      params.root_attribute(index_of(names.attributes, f.name), T::i64, le(static_cast<uint64_t>(llama.llama.*f.integer), 8));
    } else {
      uint64_t bits;
      const double value = llama.llama.*f.real;
      std::memcpy(&bits, &value, 8);
      params.root_attribute(index_of(names.attributes, f.name), T::f64, le(bits, 8));
    }
  }
  params.root_attribute(index_of(names.attributes, "bos_token_id"), T::i64, le(1, 8))
      .string_attribute(index_of(names.attributes, "torch_dtype"), 1)
      .string_attribute(index_of(names.attributes, "source"), 2);
  for (const auto& unit : rw::model::parameter_units(llama.llama))
    for (const auto& t : unit.tensors)
      params.dataset(index_of(names.datasets, "params/" + t.name), T::f32, std::vector<uint8_t>(t.shape.begin(), t.shape.end()),
                     small_floats)
          .checksum();
  write_bytes(dir + "/weight_files/prog_params.bin", params.bytes());
  rw::fuzz::H5Program vq_program;
  vq_program.string_attribute(index_of(names.attributes, "format"), 0).string_attribute(index_of(names.attributes, "source"), 3);
  const struct {
    const char* name;
    int64_t value;
  } ints[] = {{"image_size", 16}, {"in_channels", 1}, {"out_channels", 1}, {"base_channels", 2}, {"encoder_res_blocks", 1},
              {"decoder_res_blocks", 2}, {"mid_res_blocks", 2}, {"norm_groups", 1}, {"latent_channels", 1},
              {"codebook_size", 3}, {"codebook_dim", 1}};
  for (const auto& f : ints)
    vq_program.root_attribute(index_of(names.attributes, f.name), T::i64, le(static_cast<uint64_t>(f.value), 8));
  vq_program.root_attribute(index_of(names.attributes, "channel_multipliers"), T::i64, le(1, 8), 1);
  double eps = 1e-6;
  uint64_t eps_bits;
  std::memcpy(&eps_bits, &eps, 8);
  vq_program.root_attribute(index_of(names.attributes, "norm_eps"), T::f64, le(eps_bits, 8));
  for (const auto& t : rw::vision::vqgan_tensors(vq))
    vq_program.dataset(index_of(names.datasets, "vqgan/" + t.name), T::f32, std::vector<uint8_t>(t.shape.begin(), t.shape.end()),
                       small_floats);
  write_bytes(dir + "/weight_files/prog_vqgan.bin", vq_program.bytes());
  std::vector<uint8_t> text = {'a', '\n', '\n', 'b', '\n'};
  // Found by the long run (regress_string_array_attribute.bin: a parameter file's "source" as an
  // array of strings overran the buffer for one, on the stack); CODES.h5's "weights" read the
  // same way (on the heap): an array where one string is expected.
  write_bytes(dir + "/weight_files/regress_codes_weights_array.bin",
              rw::fuzz::H5Program()
                  .dataset(index_of(names.datasets, "codes"), T::i32, {1, 1, 1}, le(0, 4))
                  .root_attribute(index_of(names.attributes, "codebook_size"), T::i64, le(4, 8))
                  .root_attribute(index_of(names.attributes, "weights"), T::str8, {'V', 'Q', '.', 'h', '5', '!', '!', '!'}, 3)
                  .bytes());
  write_bytes(dir + "/weight_files/prog_codes.bin", rw::fuzz::H5Program()
                                                        .dataset(index_of(names.datasets, "codes"), T::i32, {3, 2, 2}, le(5, 4))
                                                        .dataset(index_of(names.datasets, "sources"), T::u8, {5}, text)
                                                        .root_attribute(index_of(names.attributes, "codebook_size"), T::i64, le(32, 8))
                                                        .bytes());
}

// ---- the image target (fuzz_image.cpp): PNG and JPEG variants beside the fixtures' two --------

void png_seed(const std::string& path, png_uint_32 format, int width, int height) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = format;
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(37 * i);
  if (format & PNG_FORMAT_FLAG_COLORMAP) {
    image.colormap_entries = 4;
    for (auto& p : pixels) p %= 4;
  }
  std::vector<uint8_t> colormap(PNG_IMAGE_COLORMAP_SIZE(image));
  for (std::size_t i = 0; i < colormap.size(); ++i) colormap[i] = static_cast<uint8_t>(11 * i);
  if (!png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0, colormap.data())) {
    std::fprintf(stderr, "make_seed_corpus: %s: %s\n", path.c_str(), image.message);
    std::exit(1);
  }
}

void jpeg_seed(const std::string& path, int components, bool progressive) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = 9;
  cinfo.image_height = 7;
  cinfo.input_components = components;
  cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 80, TRUE);
  if (progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<uint8_t> row(static_cast<std::size_t>(9 * components));
  while (cinfo.next_scanline < cinfo.image_height) {
    for (std::size_t i = 0; i < row.size(); ++i) row[i] = static_cast<uint8_t>(29 * i + 13 * cinfo.next_scanline);
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  write_bytes(path, std::vector<uint8_t>(buffer, buffer + size));
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
}

void image_seeds(const std::string& dir) {
  png_seed(dir + "/image/seed_grey.png", PNG_FORMAT_GRAY, 5, 3);
  png_seed(dir + "/image/seed_rgba.png", PNG_FORMAT_RGBA, 4, 4);
  png_seed(dir + "/image/seed_grey_alpha_16bit.png", PNG_FORMAT_LINEAR_Y_ALPHA, 3, 2);
  png_seed(dir + "/image/seed_palette.png", PNG_FORMAT_RGB_COLORMAP, 6, 2);
  jpeg_seed(dir + "/image/seed_grey.jpg", 1, false);
  jpeg_seed(dir + "/image/seed_progressive.jpg", 3, true);
}

}  // namespace

int main(int argc, char** argv) {
  rw::mpi::Runtime runtime(argc, argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seed_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  for (const char* t : {"attn_input", "forward_input", "token_dataset", "checkpoint", "import", "weight_files", "image"})
    std::filesystem::create_directories(dir + "/" + t);
  attn_seed(dir + "/attn_input/seed_qkv.h5", false);
  attn_seed(dir + "/attn_input/seed_all_datasets.h5", true);
  forward_seed(dir + "/forward_input/seed_tokens.h5", false);
  forward_seed(dir + "/forward_input/seed_all_datasets.h5", true);
  dataset_seed(dir + "/token_dataset/seed_plain.h5", false);
  dataset_seed(dir + "/token_dataset/seed_loss_mask.h5", true);
  const rw::model::LlamaConfig config = micro_config();
  rw::mpi::ProcessGrid grid(1, 1);
  rw::train::FsdpParams params(config, grid);
  params.initialize(7);
  rw::io::CheckpointState state;
  state.stage = "8k";
  state.step = 3;
  state.seq_len = 8;
  state.layout = "zigzag";
  state.world_size = state.dp = state.sp = 1;
  rw::io::save_checkpoint(dir + "/checkpoint/seed_checkpoint.h5", config, params, state);
  rw::io::write_sharded_tensors(dir + "/checkpoint/seed_params.h5", config, params,
                                {{"/params", rw::io::TensorGroup::Source::weights}});
  program_seeds(dir);
  import_seeds(dir);
  weight_file_seeds(dir);
  image_seeds(dir);
  std::printf("make_seed_corpus: seeds written under %s\n", dir.c_str());
  return 0;
}
