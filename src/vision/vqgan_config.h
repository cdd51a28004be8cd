// vqgan_config.h: the VQGAN's shape (LWM's VQ-GAN, the aMUSEd / open-muse configuration, as
// diffusers' VQModel describes it) and the parameter tensors it implies, named as diffusers'
// VQModel names them (diffusion_pytorch_model.safetensors), with PyTorch's shapes (convolutions
// [out, in, kh, kw]).
//
// Architecture (diffusers' Encoder / Decoder with DownEncoderBlock2D / UpDecoderBlock2D and a
// UNetMidBlock2D without attention; no time embedding):
//   encoder: conv_in 3x3 (in_channels -> ch[0]); per level i: encoder_res_blocks residual
//     blocks (the first from the previous level's width to ch[i], the rest ch[i] -> ch[i]), then,
//     except at the last level, a downsampler (pad (0, 1) bottom/right, 3x3 stride 2); mid block:
//     mid_res_blocks residual blocks at ch[-1]; GroupNorm, SiLU, conv_out 3x3 (ch[-1] -> latent).
//   quant_conv 1x1 (latent -> codebook_dim); quantize: nearest code of codebook [size, dim];
//   post_quant_conv 1x1 (codebook_dim -> latent).
//   decoder: conv_in 3x3 (latent -> ch[-1]); mid block as the encoder's; per level from the
//     deepest (up_blocks.0 at ch[-1]) to the shallowest: decoder_res_blocks residual blocks (the
//     first from the previous level's width), then, except at the last, an upsampler (nearest
//     x2, 3x3); GroupNorm, SiLU, conv_out 3x3 (ch[0] -> out_channels).
//   residual block (ResnetBlock2D): h = conv1(silu(norm1(x))); h = conv2(silu(norm2(h)));
//     out = shortcut(x) + h, shortcut a 1x1 conv_shortcut when the width changes, else x.
// ch[i] = base_channels * channel_multipliers[i] (diffusers' block_out_channels); every
// GroupNorm has norm_groups groups and eps norm_eps; every convolution has a bias.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::vision {

struct VqganConfig {
  int64_t image_size = 256;                                  // frames are image_size x image_size
  int64_t in_channels = 3, out_channels = 3;                 // RGB in [-1, 1]
  int64_t base_channels = 128;                               // ch[0]
  std::vector<int64_t> channel_multipliers = {1, 2, 2, 4, 6};  // ch[i] = base * mult[i]
  int64_t encoder_res_blocks = 2;                            // diffusers' layers_per_block
  int64_t decoder_res_blocks = 3;                            // diffusers: layers_per_block + 1
  int64_t mid_res_blocks = 2;                                // UNetMidBlock2D: num_layers (1) + 1
  int64_t norm_groups = 32;
  double norm_eps = 1e-6;
  int64_t latent_channels = 64;
  int64_t codebook_size = 8192;                              // num_vq_embeddings
  int64_t codebook_dim = 64;                                 // vq_embed_dim (null: latent_channels)

  // LWM's VQGAN (the defaults above): 256x256 -> 16x16 codes of 8192, 146,244,675 parameters.
  static VqganConfig lwm();
  // Small configurations for tests: "tiny" (16x16 RGB, widths 8, 16, 16 with 4 groups, latent 4,
  // 32 codes of 4: 4x4 codes) and "tiny-1" (one level, no resampling: 8x8 -> 8x8).
  static VqganConfig preset(const std::string& name);

  int64_t levels() const { return static_cast<int64_t>(channel_multipliers.size()); }
  int64_t level_channels(int64_t level) const { return base_channels * channel_multipliers.at(level); }
  int64_t downsample_factor() const { return int64_t(1) << (levels() - 1); }
  int64_t latent_size() const { return image_size / downsample_factor(); }  // codes per side
  int64_t codes_per_frame() const { return latent_size() * latent_size(); }
  // Floats of the largest activation of one image in the encoder or the decoder (LWM's: the
  // decoder's last level input, 256 x 256 x 256).
  int64_t max_activation_floats() const;
  // Throws InputError naming the field when a value is out of range or inconsistent (every
  // GroupNorm width divisible by norm_groups, image_size divisible by the downsampling). Ranges:
  // image_size <= 32768, widths and channel counts <= 65536, residual blocks <= 64 per stage,
  // codebook_size < 2^31 (so a config from a file cannot ask for a tensor list or a count that
  // does not fit).
  void validate() const;
  std::string describe() const;  // one line
};

struct VqganTensor {
  std::string name;            // diffusers' name, e.g. encoder.down_blocks.0.resnets.1.conv2.weight
  std::vector<int64_t> shape;  // convolutions [out, in, kh, kw]; norms and biases [channels]
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Every parameter tensor, in diffusers' VQModel order (encoder, quant_conv, quantize,
// post_quant_conv, decoder; within a module, its registration order).
std::vector<VqganTensor> vqgan_tensors(const VqganConfig& config);

struct VqganParameterCounts {
  int64_t encoder = 0;      // encoder.*
  int64_t quant_convs = 0;  // quant_conv.* + post_quant_conv.*
  int64_t codebook = 0;     // quantize.embedding.weight
  int64_t decoder = 0;      // decoder.*
  int64_t total() const { return encoder + quant_convs + codebook + decoder; }
};
VqganParameterCounts vqgan_parameter_counts(const VqganConfig& config);

}  // namespace rw::vision
