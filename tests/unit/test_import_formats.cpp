// test_import_formats.cpp: the import/export formats' parsers and number conversions on byte
// buffers (the files are the integration test's business, tests/integration/test_import_export):
//   * io/float16.h against references by definition (tests/model_files_support.h): every binary16
//     and bfloat16 pattern widened exactly and narrowed back; float32 -> both by nearest-even over
//     every tie and its neighbours, subnormals, overflow, signed zeros, infinities and NaN
//     (payload-only NaNs stay NaN), random patterns; and x86 F16C where the CPU has it;
//   * io/safetensors.h: a valid header read back, and one clear error for each malformation;
//     the writer's header parsed back; the shard index;
//   * io/hf_config.h: LlamaConfig fields, defaults noted, unsupported features refused;
//   * io/lwm_jax_stream.h: records (bin-wrapped and bare ExtType, chunked arrays) and one clear
//     error for each malformation (bad ExtType, wrong byte count, truncation, ...);
//   * the RoPE permutation: adjacent-pair RoPE on the original rows and rotate-half RoPE on the
//     permuted rows give the same q.k scores (fp64), at several positions.
#include <catch2/catch.hpp>
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "tests/input_error_check.h"
#include "io/float16.h"
#include "io/hf_config.h"
#include "io/lwm_jax_import.h"
#include "io/lwm_jax_stream.h"
#include "io/model_import.h"
#include "io/param_file_writer.h"
#include "io/safetensors.h"
#include "src/common/input_error.h"
#include "tests/model_files_support.h"
#include "tests/test_support.h"

using namespace rw::io;
using rw::InputError;
using rw::test::ref_float_to_bf16;
using rw::test::ref_float_to_half;
using rw::test::ref_half_value;

namespace {

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

uint32_t to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}


}  // namespace

// ---- float16.h ----------------------------------------------------------------------------------

TEST_CASE("binary16: every pattern widens to its exact value and narrows back", "[import][float16]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    const double ref = ref_half_value(static_cast<uint16_t>(h));
    INFO("half 0x" << std::hex << h);
    if (std::isnan(ref)) {
      REQUIRE(std::isnan(f));
      CHECK(std::signbit(f) == bool(h & 0x8000));
      CHECK(std::isnan(half_to_float(float_to_half(f))));
      CHECK((to_bits(f) & 0x1FFFu) == 0);  // the payload moved up, nothing invented below it
      CHECK(((to_bits(f) >> 13) & 0x3FFu) == (h & 0x3FFu));
    } else {
      REQUIRE(static_cast<double>(f) == ref);
      REQUIRE(std::signbit(f) == bool(h & 0x8000));  // -0 stays -0
      REQUIRE(float_to_half(f) == h);
    }
  }
}

TEST_CASE("bfloat16: every pattern widens exactly and narrows back", "[import][float16]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_float(static_cast<uint16_t>(h));
    REQUIRE(to_bits(f) == h << 16);
    if (std::isnan(f)) {
      CHECK(float_to_bf16(f) == (h | 0x40));  // quieted, sign and payload kept
    } else {
      REQUIRE(float_to_bf16(f) == h);
    }
  }
}

TEST_CASE("float32 -> binary16 rounds to nearest even like the reference", "[import][float16]") {
  // Hand-worked cases (value -> pattern), the reference aside.
  struct Case {
    float x;
    uint16_t h;
  };
  const Case cases[] = {
      {1.0f, 0x3C00},
      {1.0f + std::ldexp(1.0f, -11), 0x3C00},      // tie: even (1.0)
      {1.0f + 3 * std::ldexp(1.0f, -11), 0x3C02},  // tie: even (1 + 2^-9)
      {65504.0f, 0x7BFF},                          // largest finite
      {65519.99f, 0x7BFF},
      {65520.0f, 0x7C00},  // tie between 65504 and (virtual) 65536: even -> infinity
      {1e6f, 0x7C00},
      {-INFINITY, 0xFC00},
      {std::ldexp(1.0f, -14), 0x0400},                    // smallest normal
      {std::ldexp(1023.5f, -24), 0x0400},                 // tie between the largest subnormal and it: even
      {std::ldexp(1.0f, -24), 0x0001},                    // smallest subnormal
      {std::ldexp(1.0f, -25), 0x0000},                    // tie between 0 and 2^-24: even (0)
      {std::nextafter(std::ldexp(1.0f, -25), 1.0f), 0x0001},
      {std::ldexp(1.5f, -24), 0x0002},                    // tie: even
      {std::ldexp(2.5f, -24), 0x0002},                    // tie: even
      {-std::ldexp(3.0f, -24), 0x8003},
      {-0.0f, 0x8000},
      {1e-40f, 0x0000},  // a float32 subnormal
      {from_bits(0x7FC00000u), 0x7E00},
      {from_bits(0xFF800001u), 0xFE00},  // a signalling NaN with a low payload: stays NaN
  };
  for (const auto& c : cases) {
    INFO("x = " << c.x << " (0x" << std::hex << to_bits(c.x) << ")");
    CHECK(float_to_half(c.x) == c.h);
    CHECK(ref_float_to_half(c.x) == c.h);  // the reference agrees with the hand-worked value
  }
  // Every tie between neighbouring binary16 values and its float32 neighbours, both signs.
  for (uint32_t h = 0; h < 0x7BFF; ++h)
    for (float sign : {1.0f, -1.0f}) {
      const double mid = (ref_half_value(static_cast<uint16_t>(h)) + ref_half_value(static_cast<uint16_t>(h + 1))) / 2;
      const float tie = sign * static_cast<float>(mid);  // exact: 12 significant bits
      for (float x : {tie, std::nextafter(tie, 0.0f), std::nextafter(tie, sign * INFINITY)}) {
        INFO("x = " << x);
        REQUIRE(float_to_half(x) == ref_float_to_half(x));
      }
    }
  // Random patterns (all classes).
  rw::test::Rng rng(7);
  for (int i = 0; i < 1000000; ++i) {
    const float x = from_bits(static_cast<uint32_t>(rng.next()));
    const uint16_t got = float_to_half(x);
    if (std::isnan(x)) {
      REQUIRE(std::isnan(half_to_float(got)));
      REQUIRE(std::signbit(half_to_float(got)) == std::signbit(x));
    } else {
      REQUIRE(got == ref_float_to_half(x));
    }
  }
#if defined(__F16C__)
  // The CPU's conversion (round to nearest even) over a stride of all patterns.
  for (uint64_t b = 0; b < (1ull << 32); b += 251) {
    const float x = from_bits(static_cast<uint32_t>(b));
    if (std::isnan(x)) continue;
    REQUIRE(float_to_half(x) == static_cast<uint16_t>(_cvtss_sh(x, 0)));
  }
#endif
}

TEST_CASE("float32 -> bfloat16 rounds to nearest even like the reference", "[import][float16]") {
  struct Case {
    uint32_t x;
    uint16_t h;
  };
  const Case cases[] = {
      {0x3F808000u, 0x3F80},  // 1 + 2^-8: tie, even (1.0)
      {0x3F818000u, 0x3F82},  // 1 + 3 * 2^-8: tie, even
      {0x3F808001u, 0x3F81},
      {0x7F7F7FFFu, 0x7F7F},  // below the tie with 2^128: the largest finite bfloat16
      {0x7F7F8000u, 0x7F80},  // tie: even -> infinity
      {0x7F7FFFFFu, 0x7F80},  // the largest float32: infinity
      {0x00008000u, 0x0000},  // subnormal tie: even (0)
      {0x00018000u, 0x0002},  // subnormal tie: even
      {0x80000000u, 0x8000},  // -0
      {0xFF800000u, 0xFF80},  // -inf
      {0x7F800001u, 0x7FC0},  // NaN whose payload is in the dropped bits: still NaN
      {0xFFC00000u, 0xFFC0},
  };
  for (const auto& c : cases) {
    INFO("x = 0x" << std::hex << c.x);
    CHECK(float_to_bf16(from_bits(c.x)) == c.h);
    if (!std::isnan(from_bits(c.x))) CHECK(ref_float_to_bf16(from_bits(c.x)) == c.h);
  }
  rw::test::Rng rng(11);
  for (int i = 0; i < 1000000; ++i) {
    uint32_t b = static_cast<uint32_t>(rng.next());
    if (i % 4 == 0) b = (b & 0xFFFF0000u) | 0x8000u;  // a tie
    const float x = from_bits(b);
    if (std::isnan(x)) {
      REQUIRE(std::isnan(bf16_to_float(float_to_bf16(x))));
      continue;
    }
    REQUIRE(float_to_bf16(x) == ref_float_to_bf16(x));
  }
}

// ---- safetensors ---------------------------------------------------------------------------------

namespace {

rw::test::SafetensorsBuilder two_tensors() {
  rw::test::SafetensorsBuilder b;
  b.add("a", "F32", {2, 3}, std::string(24, '\1'));
  b.add("b", "BF16", {4}, std::string(8, '\2'));
  b.header()["__metadata__"] = {{"format", "pt"}};
  return b;
}

SafetensorsHeader parse(const std::string& bytes) {
  return parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t.safetensors");
}

}  // namespace

TEST_CASE("safetensors: a valid header is read back", "[import][safetensors]") {
  const std::string bytes = two_tensors().bytes();
  const SafetensorsHeader h = parse(bytes);
  REQUIRE(h.tensors.size() == 2);
  CHECK(h.data_start == bytes.size() - 32);
  CHECK(h.metadata.at("format") == "pt");
  const SafetensorsEntry* a = h.find("a");
  REQUIRE(a != nullptr);
  CHECK(a->dtype == "F32");
  CHECK(a->shape == std::vector<int64_t>{2, 3});
  CHECK(a->begin == 0);
  CHECK(a->end == 24);
  CHECK(h.find("b")->begin == 24);
  CHECK(h.find("c") == nullptr);
  // Our writer's header: 8-byte aligned data, parses back to the same table.
  std::vector<SafetensorsEntry> entries = h.tensors;
  const std::string header = make_safetensors_header(entries, {{"format", "pt"}});
  CHECK(header.size() % 8 == 0);
  const SafetensorsHeader again = parse(header + std::string(32, '\0'));
  CHECK(again.data_start == header.size());
  REQUIRE(again.tensors.size() == 2);
  CHECK(again.tensors[1].name == "b");
  CHECK(again.tensors[1].shape == std::vector<int64_t>{4});
  CHECK(again.metadata.at("format") == "pt");
}

TEST_CASE("safetensors: each malformation is one clear error", "[import][safetensors]") {
  const auto b = two_tensors();
  const std::string good = b.header().dump();
  CHECK_ERROR(parse(std::string(5, '\0')), "too short");
  CHECK_ERROR(parse(b.with_header(good, 1000000)), "runs past the end of the file");
  CHECK_ERROR(parse(b.with_header("[" + good.substr(1))), "does not start with '{'");
  CHECK_ERROR(parse(b.with_header("{\"a\": {\"dtype\": \"F32\",")), "not valid JSON");
  CHECK_ERROR(parse(b.with_header(good.substr(0, good.size() - 1) + ",\"a\":{}}")), "appears twice");
  CHECK_ERROR(parse(b.with_header("{\"x\":[[[[1]]]]}")), "nested deeper");
  auto damaged = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json h = b.header();
    edit(h);
    return b.with_header(h.dump());
  };
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["__metadata__"]["n"] = 3; })), "not a string");
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["a"]["dtype"] = "F128"; })), "tensor 'a': unknown dtype");
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["a"].erase("dtype"); })), "tensor 'a': no string \"dtype\"");
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["a"]["shape"] = {2, -3}; })), "not a list of non-negative integers");
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["a"]["shape"] = {2, 4}; })), "tensor 'a': shape [2, 4] of F32 needs 8 x 4 bytes");
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["a"]["data_offsets"] = {0}; })), "tensor 'a': \"data_offsets\" is not [begin, end]");
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["a"]["data_offsets"] = {24, 0}; })), "end before they begin");
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["b"]["data_offsets"] = {28, 36}; })),
              "tensor 'b': data_offsets [28, 36] run past the end of the data (32 bytes)");
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["b"]["data_offsets"] = {20, 28}; })),
              "tensors 'a' [0, 24) and 'b' [20, 28) overlap");
  CHECK_ERROR(parse(damaged([](nlohmann::json& h) { h["a"] = 5; })), "tensor 'a': not an object");
  // A truncated file: the data section shorter than the offsets say.
  const std::string full = b.bytes();
  CHECK_ERROR(parse(full.substr(0, full.size() - 3)), "run past the end of the data");
  CHECK_ERROR(parse(b.with_header("{}")), "");  // no tensors is not an error of the header
}

TEST_CASE("safetensors index: weight_map of plain file names", "[import][safetensors]") {
  const auto map = parse_safetensors_index(R"({"metadata": {"total_size": 8}, "weight_map": {"a": "m-1.safetensors", "b": "m-2.safetensors"}})", "i.json");
  CHECK(map.at("a") == "m-1.safetensors");
  CHECK(map.size() == 2);
  CHECK_ERROR(parse_safetensors_index(R"({"metadata": {}})", "i.json"), "no \"weight_map\"");
  CHECK_ERROR(parse_safetensors_index(R"({"weight_map": {"a": "../x.safetensors"}})", "i.json"), "not a file in the model's directory");
  CHECK_ERROR(parse_safetensors_index(R"({"weight_map": {"a": 3}})", "i.json"), "is not a file name");
  CHECK_ERROR(parse_safetensors_index(R"({"weight_map": {}})", "i.json"), "empty");
  CHECK_ERROR(parse_safetensors_index("[1]", "i.json"), "not a JSON object");
}

// ---- config.json ---------------------------------------------------------------------------------

TEST_CASE("config.json: LlamaConfig fields, defaults noted, unsupported features refused", "[import][config]") {
  const std::string lwm = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "vocab_size": 32000, "rms_norm_eps": 1e-6, "rope_theta": 50000000.0, "max_position_embeddings": 1048576,
    "tie_word_embeddings": false, "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2, "rope_scaling": null})";
  const HfModelConfig c = parse_hf_config(lwm, "c.json");
  CHECK(c.llama.hidden_size == 4096);
  CHECK(c.llama.rope_theta == 5e7);
  CHECK(c.llama.rms_norm_eps == 1e-6);
  CHECK(c.max_position_embeddings == 1048576);
  CHECK(c.torch_dtype == "float16");
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_id == 2);
  CHECK(c.notes.empty());
  // The exporter's config.json reads back the same.
  const HfModelConfig again = parse_hf_config(make_hf_config_json(c, "bfloat16"), "out.json");
  CHECK(again.llama.same_architecture(c.llama));
  CHECK(again.llama.rope_theta == c.llama.rope_theta);
  CHECK(again.max_position_embeddings == c.max_position_embeddings);
  CHECK(again.torch_dtype == "bfloat16");

  const std::string minimal = R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "vocab_size": 100})";
  const HfModelConfig m = parse_hf_config(minimal, "m.json");
  CHECK(m.llama.num_key_value_heads == 4);
  CHECK(m.llama.rms_norm_eps == 1e-6);
  CHECK(m.llama.rope_theta == 10000.0);
  CHECK(m.max_position_embeddings == 2048);
  CHECK(m.notes.size() == 4);

  auto with = [&](const std::string& field) { return minimal.substr(0, minimal.size() - 1) + ", " + field + "}"; };
  CHECK_ERROR(parse_hf_config(with(R"("rope_scaling": {"type": "linear", "factor": 2.0})"), "m.json"), "rope_scaling");
  CHECK_ERROR(parse_hf_config(with(R"("model_type": "mistral")"), "m.json"), "model_type \"mistral\"");
  CHECK_ERROR(parse_hf_config(with(R"("hidden_act": "gelu")"), "m.json"), "hidden_act \"gelu\"");
  CHECK_ERROR(parse_hf_config(with(R"("attention_bias": true)"), "m.json"), "attention_bias");
  CHECK_ERROR(parse_hf_config(with(R"("head_dim": 32)"), "m.json"), "head_dim 32");
  CHECK_ERROR(parse_hf_config(with(R"("num_key_value_heads": 3)"), "m.json"), "multiple of num_key_value_heads");
  CHECK_ERROR(parse_hf_config(R"({"hidden_size": 64})", "m.json"), "has no \"vocab_size\"");
  CHECK_ERROR(parse_hf_config(with(R"("rope_theta": "big")"), "m.json"), "\"rope_theta\" is \"big\", not a number");
  CHECK_ERROR(parse_hf_config(R"({"vocab_size": 64.5})", "m.json"), "\"vocab_size\" is 64.5, not an integer");
}

// ---- LWM JAX streams ------------------------------------------------------------------------------

namespace {

using rw::test::pack_jax_array;
using rw::test::pack_jax_chunked;
using rw::test::pack_jax_record;

std::vector<JaxRecord> parse_stream(const std::string& bytes) {
  return parse_lwm_jax_stream(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "p.msgpack");
}

std::vector<float> values_of(const JaxArray& a) {
  std::vector<float> out;
  for (const auto& [data, n] : a.pieces) {
    const std::size_t start = out.size();
    out.resize(start + n / 4);
    std::memcpy(out.data() + start, data, n);
  }
  return out;
}

}  // namespace

TEST_CASE("LWM JAX stream: records, bare and bin-wrapped ExtTypes, chunked arrays", "[import][lwm]") {
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  const std::string raw = rw::test::f32_bytes(v);
  const std::string stream = pack_jax_record({"transformer", "wte", "embedding"}, pack_jax_array({2, 3}, "float32", raw)) +
                             pack_jax_record({"lm_head", "kernel"}, pack_jax_array({3, 2}, "float32", raw), false) +
                             pack_jax_record({"big"}, pack_jax_chunked({3, 2}, "float32", raw, 4, 4)) +
                             pack_jax_record({"step"}, std::string("\x05", 1), false);
  const auto records = parse_stream(stream);
  REQUIRE(records.size() == 4);
  CHECK(records[0].key_text() == "transformer/wte/embedding");
  CHECK(records[0].offset == 0);
  REQUIRE(records[0].is_array);
  CHECK(records[0].array.shape == std::vector<int64_t>{2, 3});
  CHECK(records[0].array.dtype == "float32");
  CHECK(values_of(records[0].array) == v);
  REQUIRE(records[1].is_array);
  CHECK(records[1].array.shape == std::vector<int64_t>{3, 2});
  CHECK(values_of(records[1].array) == v);
  REQUIRE(records[2].is_array);
  CHECK(records[2].array.pieces.size() == 2);  // chunks of 4 and 2 elements
  CHECK(records[2].array.shape == std::vector<int64_t>{3, 2});
  CHECK(values_of(records[2].array) == v);
  CHECK_FALSE(records[3].is_array);
  CHECK(records[3].other == "an integer");
  CHECK(records[1].offset > 0);
}

TEST_CASE("LWM JAX stream: each malformation is one clear error", "[import][lwm]") {
  const std::string raw = rw::test::f32_bytes({1, 2, 3, 4});
  const std::string good = pack_jax_record({"a", "kernel"}, pack_jax_array({2, 2}, "float32", raw));
  CHECK_ERROR(parse_stream(""), "is empty");
  CHECK_ERROR(parse_stream(good + pack_jax_record({"b"}, pack_jax_array({2, 2}, "float32", raw, 5))),
              "key 'b'): msgpack ExtType 5 is not an array (ExtType 1)");
  CHECK_ERROR(parse_stream(pack_jax_record({"a"}, pack_jax_array({3, 2}, "float32", raw))),
              "shape [3, 2] of float32 needs 6 x 4 bytes, the data has 16");
  CHECK_ERROR(parse_stream(pack_jax_record({"a"}, pack_jax_array({2, 2}, "complex256", raw))), "unknown array dtype 'complex256'");
  CHECK_ERROR(parse_stream(good + good.substr(0, good.size() - 5)),
              "the record at byte " + std::to_string(good.size()) + " is truncated");
  CHECK_ERROR(parse_stream(std::string("\xc1", 1)), "not valid msgpack");
  CHECK_ERROR(parse_stream(std::string("\x93\x01\x02\x03", 4)), "is not a [key path, value] pair");
  {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> p(buf);
    p.pack_array(2);
    p.pack_array(1);
    p.pack(7);
    p.pack(1);
    CHECK_ERROR(parse_stream(std::string(buf.data(), buf.size())), "its key has an entry that is not a string");
  }
  // A bin holding more than one object, an ExtType payload that is not [shape, dtype, data].
  CHECK_ERROR(parse_stream(pack_jax_record({"a"}, pack_jax_array({2, 2}, "float32", raw) + "\x01")), "bytes after the array");
  {
    msgpack::sbuffer payload;
    msgpack::packer<msgpack::sbuffer> p(payload);
    p.pack_array(2);
    p.pack(1);
    p.pack(2);
    msgpack::sbuffer ext;
    msgpack::packer<msgpack::sbuffer> e(ext);
    e.pack_ext(payload.size(), 1);
    e.pack_ext_body(payload.data(), static_cast<uint32_t>(payload.size()));
    CHECK_ERROR(parse_stream(pack_jax_record({"a"}, std::string(ext.data(), ext.size()))), "is not [shape, dtype, data]");
  }
  // Chunked arrays: element count, chunk keys.
  std::string chunked = pack_jax_chunked({2, 3}, "float32", raw, 4, 3);
  CHECK_ERROR(parse_stream(pack_jax_record({"a"}, chunked)), "chunks of 4 elements for shape [2, 3]");
  chunked = pack_jax_chunked({2, 2}, "float32", raw, 4, 3);
  const std::size_t key1 = chunked.rfind(std::string("\xa1" "1", 2));
  REQUIRE(key1 != std::string::npos);
  chunked[key1 + 1] = '7';
  CHECK_ERROR(parse_stream(pack_jax_record({"a"}, chunked)), "has key '7'");
  {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> p(buf);
    p.pack_map(1);
    p.pack(std::string("x"));
    p.pack(1);
    CHECK_ERROR(parse_stream(pack_jax_record({"a"}, std::string(buf.data(), buf.size()))), "not a flax chunked array");
  }
}

// ---- the RoPE permutation ----------------------------------------------------------------------------

namespace {

// Rotates x (one head, head_dim d) at position p: adjacent pairs (x[2i], x[2i+1]) as LWM, or
// halves (x[i], x[i + d/2]) as ringworld; angle_i = p * theta^(-2i/d) in both.
std::vector<double> rope(std::vector<double> x, double p, double theta, bool adjacent) {
  const std::size_t d = x.size(), half = d / 2;
  for (std::size_t i = 0; i < half; ++i) {
    const double angle = p * std::pow(theta, -2.0 * double(i) / double(d));
    const std::size_t a = adjacent ? 2 * i : i, b = adjacent ? 2 * i + 1 : i + half;
    const double xa = x[a], xb = x[b];
    x[a] = xa * std::cos(angle) - xb * std::sin(angle);
    x[b] = xb * std::cos(angle) + xa * std::sin(angle);
  }
  return x;
}

std::vector<double> rows_times(const std::vector<float>& w, int64_t row0, int64_t rows, int64_t in, const std::vector<double>& x) {
  std::vector<double> out(static_cast<std::size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < in; ++c) out[r] += double(w[(row0 + r) * in + c]) * x[c];
  return out;
}

}  // namespace

TEST_CASE("RoPE permutation: adjacent-pair scores equal rotate-half scores of the permuted rows", "[import][lwm]") {
  const int64_t heads = 3, d = 8, in = 5;
  const std::vector<float> wq = rw::test::random_vector(heads * d * in, 1), wk = rw::test::random_vector(heads * d * in, 2);
  std::vector<float> pq(wq.size()), pk(wk.size());
  adjacent_pairs_to_rotate_half(wq.data(), heads, d, in, pq.data());
  adjacent_pairs_to_rotate_half(wk.data(), heads, d, in, pk.data());
  const auto xs = rw::test::random_vector(in, 3), ys = rw::test::random_vector(in, 4);
  const std::vector<double> x(xs.begin(), xs.end()), y(ys.begin(), ys.end());
  double largest_change = 0;
  for (int64_t h = 0; h < heads; ++h)
    for (double pos : {0.0, 1.0, 7.0, 1000.0})
      for (double other : {0.0, 3.0, 513.0}) {
        auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
          double s = 0;
          for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
          return s;
        };
        const double adjacent = dot(rope(rows_times(wq, h * d, d, in, x), pos, 1e4, true), rope(rows_times(wk, h * d, d, in, y), other, 1e4, true));
        const double half = dot(rope(rows_times(pq, h * d, d, in, x), pos, 1e4, false), rope(rows_times(pk, h * d, d, in, y), other, 1e4, false));
        const double unpermuted = dot(rope(rows_times(wq, h * d, d, in, x), pos, 1e4, false), rope(rows_times(wk, h * d, d, in, y), other, 1e4, false));
        // Basis: the same sum of products in a different order: a few fp64 ulps of the terms.
        CHECK(std::fabs(adjacent - half) <= 1e-12 * (1 + std::fabs(adjacent)));
        largest_change = std::max(largest_change, std::fabs(adjacent - unpermuted));
      }
  CHECK(largest_change > 0.1);  // without the permutation the scores differ: the test can fail
}

TEST_CASE("LWM config: preset and JSON (Hugging Face or LWM names)", "[import][lwm]") {
  const LwmModelSpec p = lwm_model_preset("lwm-7b");
  CHECK(*p.rope_theta == 5e7);
  CHECK(*p.max_position_embeddings == 1048576);
  CHECK(*p.num_attention_heads == 32);
  CHECK(*p.rms_norm_eps == 1e-6);
  CHECK_ERROR(lwm_model_preset("lwm-13b"), "unknown model preset 'lwm-13b'");
  const LwmModelSpec j = parse_lwm_config_json(R"({"num_attention_heads": 4, "theta": 1e6, "max_sequence_length": 8192, "scan_layers": true})", "c.json");
  CHECK(*j.num_attention_heads == 4);
  CHECK(*j.rope_theta == 1e6);
  CHECK(*j.max_position_embeddings == 8192);
  CHECK_FALSE(j.hidden_size.has_value());
  CHECK_ERROR(parse_lwm_config_json(R"({"rope_theta": 1e6, "theta": 1e4})", "c.json"), "disagree");
  CHECK_ERROR(parse_lwm_config_json(R"({"num_attention_heads": "4"})", "c.json"), "not an integer");
}

// Found by fuzz_weight_files: a parameter file whose "source" (or any string attribute the
// exporter reads back) is an array of fixed-length strings was read into the buffer for one
// string: a stack overflow, and the first string taken as the value. Now it is "not a string
// attribute" (absent), like any attribute of another kind.
TEST_CASE("parameter file: an array of strings where one string is expected is not read", "[import][param_file]") {
  const std::string path = "test_import_formats_string_array.h5";
  rw::model::LlamaConfig c;
  c.vocab_size = 8;
  c.hidden_size = 4;
  c.intermediate_size = 4;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  {
    ParamFileWriter w(path, c);
    w.add_attribute("torch_dtype", std::string("bfloat16"));
    for (const auto& unit : rw::model::parameter_units(c))
      for (const auto& t : unit.tensors) w.write_param(t.name, std::vector<float>(static_cast<std::size_t>(t.count()), 0.5f).data());
    w.finish();
  }
  {  // "source": 3 strings of 4 bytes
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(file >= 0);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 4);
    const hsize_t n = 3;
    const hid_t space = H5Screate_simple(1, &n, nullptr);
    const hid_t attr = H5Acreate2(file, "source", type, space, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(attr >= 0);
    REQUIRE(H5Awrite(attr, type, "hf:/x/y/z/w") >= 0);  // 12 bytes: "hf:/", "x/y/", "z/w\0"
    H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(file);
  }
  const ImportedAttributes a = read_imported_attributes(path);
  CHECK(a.source.empty());
  CHECK(a.torch_dtype == "bfloat16");  // a scalar string still reads
  std::remove(path.c_str());
}
