// test_vqgan_config.cpp: the VQGAN configuration (src/vision/vqgan_config.h): LWM's full
// configuration has diffusers' VQModel parameter layout, counted to the published total
// (146,244,675: encoder 58.7 M, decoder 87.0 M, codebook 0.52 M), with diffusers' tensor names;
// the tiny presets validate; bad configurations are refused naming the field. Milliseconds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <vector>
#include <string>

#include "src/common/input_error.h"
#include "src/vision/vqgan_config.h"
#include "src/vision/vqgan_import.h"

using namespace rw;
using namespace rw::vision;

TEST_CASE("LWM's VQGAN has 146,244,675 parameters in diffusers' VQModel layout", "[vision][vqgan_config]") {
  const VqganConfig c = VqganConfig::lwm();
  REQUIRE_NOTHROW(c.validate());
  CHECK(c.latent_size() == 16);
  CHECK(c.codes_per_frame() == 256);
  const VqganParameterCounts counts = vqgan_parameter_counts(c);
  CHECK(counts.total() == 146244675);
  // The rounded figures, exactly as this layout gives them.
  CHECK(counts.encoder == 58693568);  // ~58.7 M
  CHECK(counts.decoder == 87018499);  // ~87.0 M
  CHECK(counts.codebook == 8192 * 64);  // 0.52 M
  CHECK(counts.quant_convs == 2 * (64 * 64 + 64));

  std::map<std::string, std::vector<int64_t>> by_name;
  for (const VqganTensor& t : vqgan_tensors(c)) {
    INFO(t.name);
    CHECK(by_name.emplace(t.name, t.shape).second);  // names are unique
  }
  using Shape = std::vector<int64_t>;
  CHECK(by_name.at("encoder.conv_in.weight") == Shape{128, 3, 3, 3});
  CHECK(by_name.at("encoder.down_blocks.0.resnets.0.norm1.weight") == Shape{128});
  CHECK(by_name.at("encoder.down_blocks.1.resnets.0.conv_shortcut.weight") == Shape{256, 128, 1, 1});
  CHECK(by_name.count("encoder.down_blocks.2.resnets.0.conv_shortcut.weight") == 0);  // 256 -> 256
  CHECK(by_name.at("encoder.down_blocks.3.downsamplers.0.conv.weight") == Shape{512, 512, 3, 3});
  CHECK(by_name.count("encoder.down_blocks.4.downsamplers.0.conv.weight") == 0);  // the last level
  CHECK(by_name.at("encoder.down_blocks.4.resnets.1.conv2.weight") == Shape{768, 768, 3, 3});
  CHECK(by_name.at("encoder.mid_block.resnets.1.norm2.bias") == Shape{768});
  CHECK(by_name.count("encoder.mid_block.resnets.2.norm1.weight") == 0);
  CHECK(by_name.at("encoder.conv_norm_out.weight") == Shape{768});
  CHECK(by_name.at("encoder.conv_out.weight") == Shape{64, 768, 3, 3});
  CHECK(by_name.at("quant_conv.weight") == Shape{64, 64, 1, 1});
  CHECK(by_name.at("quantize.embedding.weight") == Shape{8192, 64});
  CHECK(by_name.at("post_quant_conv.bias") == Shape{64});
  CHECK(by_name.at("decoder.conv_in.weight") == Shape{768, 64, 3, 3});
  CHECK(by_name.at("decoder.up_blocks.0.resnets.2.conv1.weight") == Shape{768, 768, 3, 3});
  CHECK(by_name.at("decoder.up_blocks.0.upsamplers.0.conv.weight") == Shape{768, 768, 3, 3});
  CHECK(by_name.at("decoder.up_blocks.1.resnets.0.conv1.weight") == Shape{512, 768, 3, 3});
  CHECK(by_name.at("decoder.up_blocks.1.resnets.0.conv_shortcut.weight") == Shape{512, 768, 1, 1});
  CHECK(by_name.at("decoder.up_blocks.1.resnets.0.norm1.weight") == Shape{768});
  CHECK(by_name.count("decoder.up_blocks.4.upsamplers.0.conv.weight") == 0);
  CHECK(by_name.at("decoder.up_blocks.4.resnets.2.conv2.weight") == Shape{128, 128, 3, 3});
  CHECK(by_name.at("decoder.conv_out.weight") == Shape{3, 128, 3, 3});
  CHECK(by_name.at("decoder.conv_norm_out.bias") == Shape{128});
}

TEST_CASE("the tiny VQGAN presets validate; bad configurations are refused naming the field",
          "[vision][vqgan_config]") {
  for (const char* name : {"lwm", "tiny", "tiny-1"}) {
    INFO(name);
    const VqganConfig c = VqganConfig::preset(name);
    CHECK_NOTHROW(c.validate());
    CHECK_FALSE(c.describe().empty());
    CHECK(vqgan_parameter_counts(c).total() > 0);
  }
  CHECK(VqganConfig::preset("tiny").latent_size() == 4);
  CHECK(VqganConfig::preset("tiny-1").latent_size() == 8);
  CHECK_THROWS_WITH(VqganConfig::preset("huge"), Catch::Contains("unknown VQGAN configuration 'huge'"));

  VqganConfig c = VqganConfig::lwm();
  c.norm_groups = 48;  // 128 % 48 != 0
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("norm_groups (48) must divide") && Catch::Contains("128 channels"));
  c = VqganConfig::lwm();
  c.image_size = 250;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("image_size (250)") && Catch::Contains("16"));
  c = VqganConfig::lwm();
  c.codebook_size = 0;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("codebook_size"));
  c = VqganConfig::lwm();
  c.channel_multipliers.clear();
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("channel_multipliers"));
  c = VqganConfig::lwm();
  c.norm_eps = 0;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("norm_eps"));
}

// Found by fuzz_import: a config.json with layers_per_block 2^31 - 2 passed validation, and the
// importer then listed billions of tensors (minutes, gigabytes) before looking at a weight;
// widths of 2^31 overflowed int64 counting one convolution's weights (2^62 x 9).
TEST_CASE("VQGAN configurations are bounded so that a config from a file cannot ask for too much",
          "[vision][vqgan_config]") {
  VqganConfig c = VqganConfig::preset("tiny-1");
  c.encoder_res_blocks = 2000000000;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("encoder_res_blocks must be in [1, 64]"));
  c = VqganConfig::preset("tiny-1");
  c.decoder_res_blocks = 65;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("decoder_res_blocks"));
  c = VqganConfig::preset("tiny-1");
  c.mid_res_blocks = 65;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("mid_res_blocks"));
  c = VqganConfig::preset("tiny-1");
  c.base_channels = 1 << 30;
  c.norm_groups = 1;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("base_channels must be in [1, 65536]"));
  c = VqganConfig::preset("tiny-1");
  c.channel_multipliers = {1 << 14};  // 8 x 2^14 = 2^17 channels
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("channel_multipliers[0]") && Catch::Contains("65536"));
  for (int64_t VqganConfig::*field : {&VqganConfig::in_channels, &VqganConfig::out_channels, &VqganConfig::latent_channels,
                                       &VqganConfig::codebook_dim, &VqganConfig::norm_groups}) {
    c = VqganConfig::preset("tiny-1");
    c.*field = 65537;
    CHECK_THROWS_WITH(c.validate(), Catch::Contains("must be in [1, 65536], is 65537"));
  }
  c = VqganConfig::preset("tiny-1");
  c.image_size = 65536;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("image_size must be in [1, 32768]"));
  // At every bound at once the counts stay exact in int64 (UBSan would report an overflow); the
  // tensor list is only enumerated, never allocated.
  c = VqganConfig::preset("tiny-1");
  c.base_channels = 65536;
  c.norm_groups = 65536;
  c.in_channels = c.out_channels = c.latent_channels = c.codebook_dim = 65536;
  c.image_size = 32768;
  c.codebook_size = (int64_t(1) << 31) - 1;
  c.encoder_res_blocks = c.decoder_res_blocks = c.mid_res_blocks = 64;
  REQUIRE_NOTHROW(c.validate());
  const std::vector<VqganTensor> tensors = vqgan_tensors(c);
  int64_t largest = 0;
  for (const VqganTensor& t : tensors) largest = std::max(largest, t.count());
  CHECK(largest == ((int64_t(1) << 31) - 1) * 65536);  // the codebook
  CHECK(c.max_activation_floats() == int64_t(65536) * 32768 * 32768);
  // The importer's path: diffusers' config.json with layers_per_block 2^31 - 2, refused at once.
  const std::string config_json =
      "{\"block_out_channels\": [2], \"layers_per_block\": 2147483646, \"latent_channels\": 1, \"num_vq_embeddings\": 3, "
      "\"norm_num_groups\": 1, \"mid_block_add_attention\": false}";
  CHECK_THROWS_WITH(parse_diffusers_vq_config(config_json, "config.json", 16, nullptr),
                    Catch::Contains("'config.json'") && Catch::Contains("encoder_res_blocks must be in [1, 64]"));
}
