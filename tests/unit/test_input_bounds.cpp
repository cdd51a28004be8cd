// test_input_bounds.cpp: values read from files and options that once overflowed what uses
// them (found by the fuzz targets, tests/fuzz): model configs whose tensor sizes overflow int64.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>

#include "src/common/input_error.h"
#include "src/model/llama_config.h"

using namespace rw;

TEST_CASE("model config: sizes whose parameter counts overflow int64 are refused", "[config]") {
  // A parameter file's attributes once gave hidden_size 2^48: validate() passed and counting the
  // parameters (ckpt info, FSDP) overflowed int64 (UBSan: signed overflow in TensorSpec::count).
  model::LlamaConfig c;
  c.hidden_size = int64_t{1} << 48;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("hidden_size"));
  c = model::LlamaConfig{};
  c.vocab_size = int64_t{1} << 40;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("vocab_size"));
  c = model::LlamaConfig{};
  c.intermediate_size = int64_t{1} << 50;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("intermediate_size"));
  c = model::LlamaConfig{};
  c.num_hidden_layers = int64_t{1} << 40;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("num_hidden_layers"));
}

TEST_CASE("model config: the largest accepted sizes count their parameters exactly", "[config]") {
  model::LlamaConfig c;
  c.vocab_size = INT32_MAX;
  c.hidden_size = int64_t{1} << 20;
  c.intermediate_size = int64_t{1} << 22;
  c.num_hidden_layers = int64_t{1} << 16;
  c.num_attention_heads = 1 << 10;
  c.num_key_value_heads = 1 << 10;
  REQUIRE_NOTHROW(c.validate());
  // Reference in 128-bit integers: embedding and lm_head, per layer two norms, q/k/v/o and the
  // three FFN matrices, the final norm.
  const __int128 v = c.vocab_size, h = c.hidden_size, kv = c.kv_width(), f = c.intermediate_size,
                 layers = c.num_hidden_layers;
  const __int128 expected = 2 * v * h + layers * (2 * h + 2 * h * h + 2 * kv * h + 3 * h * f) + h;
  CHECK(static_cast<__int128>(c.parameter_count()) == expected);
}

TEST_CASE("model config: real values must be finite; any finite one describes", "[config]") {
  model::LlamaConfig c;
  c.rope_theta = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("rope_theta"));
  c = model::LlamaConfig{};
  c.rms_norm_eps = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("rms_norm_eps"));
  // describe() cast rope_theta to long long: undefined (UBSan) above 2^63, e.g. 1e30 from a file.
  // Now it prints the shortest text that reads back as the same double.
  c = model::LlamaConfig{};
  c.rope_theta = 1e30;
  REQUIRE_NOTHROW(c.validate());
  CHECK_THAT(c.describe(), Catch::Contains("rope_theta 1e30,"));
  c.rope_theta = 500000.75;
  CHECK_THAT(c.describe(), Catch::Contains("rope_theta 500000.75,"));
}
