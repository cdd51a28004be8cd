// vqgan_import.h: the two published forms of LWM's VQGAN, opened for `ringworld import` and
// written as our weight file (vqgan_weights.h). Each source is validated completely when
// opened (config, every tensor's name, dtype, shape and byte range; nothing missing, unknown or
// given twice) without reading tensor data, so bad input fails at once with one InputError
// naming the file and the tensor; fetch() then converts one tensor to float32 exactly.
//   diffusers-vq DIR: diffusers' VQModel directory: config.json (block_out_channels,
//     layers_per_block, latent_channels, num_vq_embeddings, vq_embed_dim, norm_num_groups,
//     in/out_channels; DownEncoderBlock2D / UpDecoderBlock2D, silu, group norm, no mid-block
//     attention) and diffusion_pytorch_model.safetensors (F32, F16 or BF16; diffusers' names).
//   lwm-vqgan FILE: LWM's `vqgan` parameters: the Python pickle LWM publishes and lwm/vqgan.py
//     loads (a nested dict of numpy arrays, read by the restricted io/pickle_reader.h; nothing
//     executed), or msgpack records (the streaming format of io/lwm_jax_stream.h: key path,
//     flax array); the first byte tells them apart (0x80: pickle). Flax's names (lwm/vqgan.py: encoder/Conv_0,
//     encoder/DownsamplingBlock_i/ResnetBlock_m/{GroupNorm_0, Conv_0, GroupNorm_1, Conv_1,
//     Conv_2 (shortcut)}, .../Downsample_0/Conv_0, MidBlock_0, decoder/UpsamplingBlock_k (k = 0
//     the deepest) /.../Upsample_0/Conv_0, quantize/embeddings, quant_conv, post_quant_conv;
//     GroupNorm scale/bias, Conv kernel/bias) mapped to diffusers', kernels HWIO -> OIHW. The
//     architecture is not in the file: it comes from `config` (LWM's by default). float32,
//     float16, bfloat16 and float64 arrays are converted to float32.
// The image size is not in either form (the network is convolutional): `image_size` sets it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/vision/vqgan_config.h"

namespace rw::vision {

class VqganSource {
 public:
  virtual ~VqganSource() = default;
  const VqganConfig& config() const { return config_; }
  const std::string& description() const { return description_; }  // "diffusers-vq:/abs/dir"
  const std::vector<std::string>& notes() const { return notes_; }
  // tensor.count() floats of one tensor of vqgan_tensors(config()), in PyTorch's layout.
  virtual void fetch(const VqganTensor& tensor, float* out) const = 0;

 protected:
  VqganConfig config_;
  std::string description_;
  std::vector<std::string> notes_;
};

// diffusers' VQModel config.json -> VqganConfig (InputError naming the file and the field).
VqganConfig parse_diffusers_vq_config(const std::string& json_text, const std::string& file, int64_t image_size,
                                      std::vector<std::string>* notes);

std::unique_ptr<VqganSource> open_diffusers_vq(const std::string& dir, int64_t image_size);
std::unique_ptr<VqganSource> open_lwm_vqgan(const std::string& file, const VqganConfig& config);

// The flax key path ("encoder/DownsamplingBlock_0/ResnetBlock_1/Conv_0/kernel") of each diffusers
// tensor name of vqgan_tensors(config).
std::vector<std::pair<std::string, std::string>> lwm_vqgan_names(const VqganConfig& config);

}  // namespace rw::vision
