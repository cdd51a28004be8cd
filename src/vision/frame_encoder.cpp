// frame_encoder.cpp: see frame_encoder.h.
#include "src/vision/frame_encoder.h"

#include <algorithm>

#include "device/exec_context.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::vision {
namespace {

const VqganConfig& rgb_config(const VqganConfig& c) {
  if (c.in_channels != 3) throw InputError("frames are RGB; the VQGAN takes " + std::to_string(c.in_channels) + " channels");
  return c;
}

}  // namespace

FrameEncoder::FrameEncoder(device::Backend& backend, const VqganConfig& config, const std::vector<float>& values, int64_t max_batch)
    : model_(device::ExecContext::on_default_stream(backend), rgb_config(config)),
      max_batch_(std::max<int64_t>(max_batch, 1)),
      image_floats_(config.in_channels * config.image_size * config.image_size),
      per_frame_(config.latent_size() * config.latent_size()),
      images_(backend, static_cast<std::size_t>(max_batch_ * image_floats_)),
      latents_(backend, static_cast<std::size_t>(max_batch_ * config.codebook_dim * per_frame_)),
      codes_(backend, static_cast<std::size_t>(max_batch_ * per_frame_)) {
  model_.load_weights(values);
}

std::vector<int32_t> FrameEncoder::encode(const float* frames, int64_t n) {
  RW_CHECK(n >= 0, "FrameEncoder::encode: negative frame count");
  std::vector<int32_t> out(static_cast<std::size_t>(n * per_frame_));
  std::vector<float> host(static_cast<std::size_t>(max_batch_ * image_floats_), 0.0f);
  std::vector<int32_t> batch_codes(static_cast<std::size_t>(max_batch_ * per_frame_));
  for (int64_t first = 0; first < n; first += max_batch_) {
    const int64_t b = std::min(max_batch_, n - first);
    // A short last batch: the tail of the upload holds earlier frames, encoded and ignored.
    std::copy(frames + first * image_floats_, frames + (first + b) * image_floats_, host.begin());
    images_.upload(host.data());
    model_.encode(images_.data(), b, latents_.data());
    model_.quantize(latents_.data(), b, codes_.data(), nullptr);
    codes_.download(batch_codes.data());
    std::copy(batch_codes.begin(), batch_codes.begin() + b * per_frame_, out.begin() + first * per_frame_);
  }
  return out;
}

}  // namespace rw::vision
