// vqgan_config.cpp: see vqgan_config.h.
#include "src/vision/vqgan_config.h"

#include <algorithm>
#include <cmath>

#include "src/common/input_error.h"

namespace rw::vision {

VqganConfig VqganConfig::lwm() { return VqganConfig{}; }

VqganConfig VqganConfig::preset(const std::string& name) {
  if (name == "lwm") return lwm();
  VqganConfig c;
  if (name == "tiny" || name == "tiny-1") {
    c.image_size = name == "tiny" ? 16 : 8;
    c.base_channels = 8;
    c.channel_multipliers = name == "tiny" ? std::vector<int64_t>{1, 2, 2} : std::vector<int64_t>{1};
    c.encoder_res_blocks = 2;
    c.decoder_res_blocks = 3;
    c.mid_res_blocks = 2;
    c.norm_groups = 4;
    c.latent_channels = 4;
    c.codebook_size = 32;
    c.codebook_dim = 3;  // differs from latent_channels, so the 1x1 quant convolutions change width
    return c;
  }
  throw InputError("unknown VQGAN configuration '" + name + "' (known: lwm, tiny, tiny-1)");
}

void VqganConfig::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw InputError("VQGAN configuration: " + what);
  };
  // Bounds far above any VQGAN (LWM's: 256 pixels, widths up to 768, 2-3 blocks a level) that keep
  // every count the code forms (a convolution's weights, an activation, the tensor list) well
  // inside 64 bits and small enough to enumerate: a config read from a file is checked here
  // before anything is sized by it.
  constexpr int64_t kMaxCount = (int64_t(1) << 31) - 1, kMaxWidth = int64_t(1) << 16, kMaxBlocks = 64;
  auto in_range = [&](const char* field, int64_t v, int64_t high, const char* high_text) {
    require(v >= 1 && v <= high, std::string(field) + " must be in [1, " + high_text + "], is " + std::to_string(v));
  };
  in_range("image_size", image_size, 32768, "32768");
  in_range("in_channels", in_channels, kMaxWidth, "65536");
  in_range("out_channels", out_channels, kMaxWidth, "65536");
  in_range("base_channels", base_channels, kMaxWidth, "65536");
  in_range("encoder_res_blocks", encoder_res_blocks, kMaxBlocks, "64");
  in_range("decoder_res_blocks", decoder_res_blocks, kMaxBlocks, "64");
  in_range("mid_res_blocks", mid_res_blocks, kMaxBlocks, "64");
  in_range("norm_groups", norm_groups, kMaxWidth, "65536");
  in_range("latent_channels", latent_channels, kMaxWidth, "65536");
  in_range("codebook_size", codebook_size, kMaxCount, "2^31 - 1");
  in_range("codebook_dim", codebook_dim, kMaxWidth, "65536");
  require(!channel_multipliers.empty() && channel_multipliers.size() <= 16,
          "channel_multipliers must list 1 to 16 levels, has " + std::to_string(channel_multipliers.size()));
  for (std::size_t i = 0; i < channel_multipliers.size(); ++i) {
    const int64_t m = channel_multipliers[i];
    require(m >= 1 && m <= kMaxWidth / base_channels,
            "channel_multipliers[" + std::to_string(i) + "] = " + std::to_string(m) + " is out of range (a level's width, base_channels x multiplier, is at most 65536)");
    require(base_channels * m % norm_groups == 0,
            "norm_groups (" + std::to_string(norm_groups) + ") must divide every level's width; level " +
                std::to_string(i) + " has " + std::to_string(base_channels * m) + " channels");
  }
  require(std::isfinite(norm_eps) && norm_eps > 0, "norm_eps must be positive and finite");
  require(image_size % downsample_factor() == 0,
          "image_size (" + std::to_string(image_size) + ") must be divisible by the downsampling factor " +
              std::to_string(downsample_factor()) + " (2^(levels - 1))");
}

int64_t VqganConfig::max_activation_floats() const {
  const int64_t n_levels = levels(), last = level_channels(n_levels - 1);
  int64_t r = image_size, m = std::max(in_channels, out_channels) * r * r, width = level_channels(0);
  for (int64_t i = 0; i < n_levels; ++i) {  // encoder: each level's residual blocks at resolution r
    m = std::max(m, std::max(width, level_channels(i)) * r * r);
    width = level_channels(i);
    if (i + 1 < n_levels) r /= 2;
  }
  m = std::max(m, std::max({last, latent_channels, codebook_dim}) * r * r);
  width = last;
  for (int64_t i = 0; i < n_levels; ++i) {  // decoder: residual blocks at r, then the upsampled input at 2r
    const int64_t out = level_channels(n_levels - 1 - i);
    m = std::max(m, std::max(width, out) * r * r);
    width = out;
    if (i + 1 < n_levels) {
      r *= 2;
      m = std::max(m, out * r * r);
    }
  }
  return m;
}

std::string VqganConfig::describe() const {
  std::string mult;
  for (int64_t m : channel_multipliers) mult += (mult.empty() ? "" : ", ") + std::to_string(m);
  return "VQGAN " + std::to_string(image_size) + "x" + std::to_string(image_size) + "x" + std::to_string(in_channels) +
         ", base " + std::to_string(base_channels) + " x (" + mult + "), res blocks " +
         std::to_string(encoder_res_blocks) + "/" + std::to_string(decoder_res_blocks) + ", GroupNorm " +
         std::to_string(norm_groups) + ", latent " + std::to_string(latent_channels) + ", codebook " +
         std::to_string(codebook_size) + " x " + std::to_string(codebook_dim) + ", " +
         std::to_string(latent_size()) + "x" + std::to_string(latent_size()) + " codes per frame";
}

namespace {

class TensorList {
 public:
  explicit TensorList(std::vector<VqganTensor>& out) : out_(out) {}
  void conv(const std::string& name, int64_t in, int64_t out, int64_t k) {
    out_.push_back({name + ".weight", {out, in, k, k}});
    out_.push_back({name + ".bias", {out}});
  }
  void norm(const std::string& name, int64_t channels) {
    out_.push_back({name + ".weight", {channels}});
    out_.push_back({name + ".bias", {channels}});
  }
  // ResnetBlock2D's registration order: norm1, conv1, norm2, conv2, conv_shortcut.
  void resnet(const std::string& name, int64_t in, int64_t out) {
    norm(name + ".norm1", in);
    conv(name + ".conv1", in, out, 3);
    norm(name + ".norm2", out);
    conv(name + ".conv2", out, out, 3);
    if (in != out) conv(name + ".conv_shortcut", in, out, 1);
  }
  void mid_block(const std::string& name, int64_t channels, int64_t blocks) {
    for (int64_t m = 0; m < blocks; ++m) resnet(name + ".resnets." + std::to_string(m), channels, channels);
  }

 private:
  std::vector<VqganTensor>& out_;
};

}  // namespace

std::vector<VqganTensor> vqgan_tensors(const VqganConfig& c) {
  std::vector<VqganTensor> tensors;
  TensorList t(tensors);
  const int64_t levels = c.levels(), last = c.level_channels(levels - 1);
  // Encoder: conv_in, down_blocks, mid_block, conv_norm_out, conv_out.
  t.conv("encoder.conv_in", c.in_channels, c.level_channels(0), 3);
  int64_t width = c.level_channels(0);
  for (int64_t i = 0; i < levels; ++i) {
    const std::string block = "encoder.down_blocks." + std::to_string(i);
    const int64_t out = c.level_channels(i);
    for (int64_t m = 0; m < c.encoder_res_blocks; ++m)
      t.resnet(block + ".resnets." + std::to_string(m), m == 0 ? width : out, out);
    if (i + 1 < levels) t.conv(block + ".downsamplers.0.conv", out, out, 3);
    width = out;
  }
  t.mid_block("encoder.mid_block", last, c.mid_res_blocks);
  t.norm("encoder.conv_norm_out", last);
  t.conv("encoder.conv_out", last, c.latent_channels, 3);
  // VQModel: quant_conv, quantize, post_quant_conv.
  t.conv("quant_conv", c.latent_channels, c.codebook_dim, 1);
  tensors.push_back({"quantize.embedding.weight", {c.codebook_size, c.codebook_dim}});
  t.conv("post_quant_conv", c.codebook_dim, c.latent_channels, 1);
  // Decoder: conv_in, up_blocks (deepest first), mid_block, conv_norm_out, conv_out.
  t.conv("decoder.conv_in", c.latent_channels, last, 3);
  width = last;
  for (int64_t i = 0; i < levels; ++i) {
    const std::string block = "decoder.up_blocks." + std::to_string(i);
    const int64_t out = c.level_channels(levels - 1 - i);
    for (int64_t m = 0; m < c.decoder_res_blocks; ++m)
      t.resnet(block + ".resnets." + std::to_string(m), m == 0 ? width : out, out);
    if (i + 1 < levels) t.conv(block + ".upsamplers.0.conv", out, out, 3);
    width = out;
  }
  t.mid_block("decoder.mid_block", last, c.mid_res_blocks);
  t.norm("decoder.conv_norm_out", c.level_channels(0));
  t.conv("decoder.conv_out", c.level_channels(0), c.out_channels, 3);
  return tensors;
}

VqganParameterCounts vqgan_parameter_counts(const VqganConfig& config) {
  VqganParameterCounts counts;
  for (const VqganTensor& t : vqgan_tensors(config)) {
    if (t.name.rfind("encoder.", 0) == 0) counts.encoder += t.count();
    else if (t.name.rfind("decoder.", 0) == 0) counts.decoder += t.count();
    else if (t.name.rfind("quantize.", 0) == 0) counts.codebook += t.count();
    else counts.quant_convs += t.count();
  }
  return counts;
}

}  // namespace rw::vision
