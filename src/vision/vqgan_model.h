// vqgan_model.h: the VQGAN's forward passes (encode, quantize, decode) for any VqganConfig,
// built from the backend's kernels (device/vision_args.h, plus add for the residuals) on an
// ExecContext: every activation lives in device memory, every op is enqueued on the compute
// stream, nothing is read back. Forward only (inference: frames to codes and back). Layout and
// names: vqgan_config.h (diffusers' VQModel); images and activations NCHW fp32.
//
// Weights: one device array, the tensors of vqgan_tensors(config) back to back in that order
// (load_weights). Workspace: four activation buffers of the largest activation of a batch
// (ping-pong for the residual blocks: input, two temporaries, output) and one for the
// quantized latents of decode_codes; allocated at the first call and grown only when a call
// brings a larger batch (allocations() counts them). The largest activation of LWM's VQGAN is
// the decoder's last level input, 256 x 256 x 256 floats (64 MiB) per frame.
//
// Pointers passed in and out are device pointers of the context's backend; results are ready
// for compute-stream work enqueued after the call (exec_context.h).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/exec_context.h"
#include "src/vision/vqgan_config.h"

namespace rw::vision {

class VqganModel {
 public:
  // Validates the configuration (InputError); refuses a backend without the VQGAN kernels
  // (InputError naming it).
  VqganModel(device::ExecContext ctx, const VqganConfig& config);

  const VqganConfig& config() const { return config_; }
  int64_t parameter_count() const { return static_cast<int64_t>(weights_.size()); }
  // values: parameter_count() floats in vqgan_tensors(config) order (synchronous upload).
  void load_weights(const std::vector<float>& values);

  // images [batch, in_channels, S, S] -> latents [batch, codebook_dim, s, s] (encoder, quant_conv),
  // S = image_size, s = latent_size.
  void encode(const float* images, int64_t batch, float* latents);
  // latents -> codes [batch, s, s] (nearest codebook rows, ties to the lowest index) and, when
  // not null, quantized [batch, codebook_dim, s, s] (the codebook rows).
  void quantize(const float* latents, int64_t batch, int32_t* codes, float* quantized);
  // quantized [batch, codebook_dim, s, s] -> images [batch, out_channels, S, S] (post_quant_conv,
  // decoder).
  void decode(const float* quantized, int64_t batch, float* images);
  // codes [batch, s, s] (in [0, codebook_size): validate codes from files first) -> images.
  void decode_codes(const int32_t* codes, int64_t batch, float* images);

  int allocations() const { return allocations_; }

 private:
  struct Act {  // an activation [batch, c, h, w] in one of the workspace buffers
    int buffer;
    int64_t c, h, w;
  };
  const float* param(const std::string& name) const;
  float* buf(int i) { return buffers_[static_cast<std::size_t>(i)].data(); }
  void ensure_workspace(int64_t batch);
  void conv(const std::string& name, const float* x, int64_t cin, int64_t h, int64_t w, float* y, int64_t cout,
            int64_t k, int stride, int pad_top, int pad_bottom, int pad_left, int pad_right);
  void norm_silu(const std::string& name, const float* x, int64_t c, int64_t h, int64_t w, float* y);
  // One residual block on the activation in buffer x.buffer; returns where its output lies.
  Act resnet(const std::string& name, Act x, int64_t out_channels);

  device::ExecContext ctx_;
  VqganConfig config_;
  std::map<std::string, int64_t> offsets_;  // tensor name -> offset in weights_
  device::DeviceArray<float> weights_;
  std::vector<device::DeviceArray<float>> buffers_;  // 4 activation buffers
  device::DeviceArray<float> quantized_;             // decode_codes' latents
  int64_t batch_capacity_ = 0;
  int allocations_ = 0;
  int64_t batch_ = 0;  // the current call's batch
};

}  // namespace rw::vision
