// frame_encoder.h: frames to VQGAN codes in batches, the loop `vqgan encode` and `prepare
// --vision` share: frames already prepared (frame_preprocess.h lwm_frame: [3, S, S] in [-1, 1])
// go up in batches of at most max_batch, through encode and quantize, and the codes come back
// to the host. Device buffers are sized once for max_batch.
#pragma once
#include <cstdint>
#include <vector>

#include "device/backend.h"
#include "src/vision/vqgan_model.h"

namespace rw::vision {

class FrameEncoder {
 public:
  // Uploads the weights (values: VqganWeights::values). Throws InputError for a model that does
  // not take RGB frames or a backend without the VQGAN kernels.
  FrameEncoder(device::Backend& backend, const VqganConfig& config, const std::vector<float>& values, int64_t max_batch);
  const VqganConfig& config() const { return model_.config(); }
  int64_t frame_floats() const { return image_floats_; }  // 3 x S x S
  int64_t codes_per_frame() const { return per_frame_; }  // s x s
  // frames: n x frame_floats() -> n x codes_per_frame() codes.
  std::vector<int32_t> encode(const float* frames, int64_t n);

 private:
  VqganModel model_;
  int64_t max_batch_, image_floats_, per_frame_;
  device::DeviceArray<float> images_, latents_;
  device::DeviceArray<int32_t> codes_;
};

}  // namespace rw::vision
