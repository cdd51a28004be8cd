// vqgan_model.cpp: see vqgan_model.h.
#include "src/vision/vqgan_model.h"

#include <algorithm>

#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::vision {

using device::view;

VqganModel::VqganModel(device::ExecContext ctx, const VqganConfig& config) : ctx_(ctx), config_(config) {
  config_.validate();
  if (!ctx_.backend->capabilities().vqgan_kernels)
    throw InputError("backend " + ctx_.backend->name() +
                     " has no VQGAN kernels (convolution, GroupNorm, code search)");
  int64_t offset = 0;
  for (const VqganTensor& t : vqgan_tensors(config_)) {
    offsets_[t.name] = offset;
    offset += t.count();
  }
  weights_ = device::DeviceArray<float>(*ctx_.backend, static_cast<std::size_t>(offset));
}

void VqganModel::load_weights(const std::vector<float>& values) {
  if (static_cast<int64_t>(values.size()) != parameter_count())
    throw InputError("VQGAN weights: " + std::to_string(values.size()) + " values for a model of " +
                     std::to_string(parameter_count()) + " parameters (" + config_.describe() + ")");
  weights_.upload(values.data());
}

const float* VqganModel::param(const std::string& name) const {
  const auto it = offsets_.find(name);
  RW_CHECK(it != offsets_.end(), "VQGAN: no parameter tensor " + name);
  return weights_.data() + it->second;
}

void VqganModel::ensure_workspace(int64_t batch) {
  RW_CHECK(batch >= 1, "VQGAN: batch must be >= 1, is " + std::to_string(batch));
  batch_ = batch;
  if (batch <= batch_capacity_) return;
  const std::size_t n = static_cast<std::size_t>(config_.max_activation_floats() * batch);
  buffers_.clear();
  for (int i = 0; i < 4; ++i) buffers_.emplace_back(*ctx_.backend, n);
  const int64_t s = config_.latent_size();
  quantized_ = device::DeviceArray<float>(*ctx_.backend, static_cast<std::size_t>(batch * config_.codebook_dim * s * s));
  batch_capacity_ = batch;
  allocations_ += 5;
}

void VqganModel::conv(const std::string& name, const float* x, int64_t cin, int64_t h, int64_t w, float* y,
                      int64_t cout, int64_t k, int stride, int pad_top, int pad_bottom, int pad_left, int pad_right) {
  device::Conv2dArgs a;
  a.x = view(x, {batch_, cin, h, w});
  a.weight = view(param(name + ".weight"), {cout, cin, k, k});
  a.bias = view(param(name + ".bias"), {cout});
  a.stride = stride;
  a.pad_top = pad_top;
  a.pad_bottom = pad_bottom;
  a.pad_left = pad_left;
  a.pad_right = pad_right;
  const int64_t hout = (h + pad_top + pad_bottom - k) / stride + 1, wout = (w + pad_left + pad_right - k) / stride + 1;
  a.y = view(y, {batch_, cout, hout, wout});
  ctx_.backend->conv2d(a, *ctx_.compute);
}

void VqganModel::norm_silu(const std::string& name, const float* x, int64_t c, int64_t h, int64_t w, float* y) {
  device::GroupNormArgs a;
  a.x = view(x, {batch_, c, h, w});
  a.weight = view(param(name + ".weight"), {c});
  a.bias = view(param(name + ".bias"), {c});
  a.y = view(y, {batch_, c, h, w});
  a.groups = static_cast<int>(config_.norm_groups);
  a.eps = config_.norm_eps;
  a.silu = true;
  ctx_.backend->group_norm(a, *ctx_.compute);
}

VqganModel::Act VqganModel::resnet(const std::string& name, Act x, int64_t out) {
  int free[3], n = 0;
  for (int i = 0; i < 4; ++i)
    if (i != x.buffer) free[n++] = i;
  const int t1 = free[0], t2 = free[1], y = free[2];
  norm_silu(name + ".norm1", buf(x.buffer), x.c, x.h, x.w, buf(t1));
  conv(name + ".conv1", buf(t1), x.c, x.h, x.w, buf(t2), out, 3, 1, 1, 1, 1, 1);
  norm_silu(name + ".norm2", buf(t2), out, x.h, x.w, buf(t2));
  conv(name + ".conv2", buf(t2), out, x.h, x.w, buf(y), out, 3, 1, 1, 1, 1, 1);
  const int64_t count = batch_ * out * x.h * x.w;
  const float* shortcut = buf(x.buffer);
  if (x.c != out) {
    conv(name + ".conv_shortcut", buf(x.buffer), x.c, x.h, x.w, buf(t1), out, 1, 1, 0, 0, 0, 0);
    shortcut = buf(t1);
  }
  ctx_.backend->add(device::AddArgs{view(shortcut, {count}), view(buf(y), {count})}, *ctx_.compute);
  return Act{y, out, x.h, x.w};
}

void VqganModel::encode(const float* images, int64_t batch, float* latents) {
  ensure_workspace(batch);
  const VqganConfig& c = config_;
  const int64_t levels = c.levels();
  int64_t r = c.image_size;
  conv("encoder.conv_in", images, c.in_channels, r, r, buf(0), c.level_channels(0), 3, 1, 1, 1, 1, 1);
  Act x{0, c.level_channels(0), r, r};
  for (int64_t i = 0; i < levels; ++i) {
    const std::string block = "encoder.down_blocks." + std::to_string(i);
    for (int64_t m = 0; m < c.encoder_res_blocks; ++m)
      x = resnet(block + ".resnets." + std::to_string(m), x, c.level_channels(i));
    if (i + 1 < levels) {  // pad (0, 1) bottom and right, 3x3 stride 2
      const int y = (x.buffer + 1) % 4;
      conv(block + ".downsamplers.0.conv", buf(x.buffer), x.c, r, r, buf(y), x.c, 3, 2, 0, 1, 0, 1);
      r /= 2;
      x = Act{y, x.c, r, r};
    }
  }
  for (int64_t m = 0; m < c.mid_res_blocks; ++m) x = resnet("encoder.mid_block.resnets." + std::to_string(m), x, x.c);
  const int t = (x.buffer + 1) % 4, u = (x.buffer + 2) % 4;
  norm_silu("encoder.conv_norm_out", buf(x.buffer), x.c, r, r, buf(t));
  conv("encoder.conv_out", buf(t), x.c, r, r, buf(u), c.latent_channels, 3, 1, 1, 1, 1, 1);
  conv("quant_conv", buf(u), c.latent_channels, r, r, latents, c.codebook_dim, 1, 1, 0, 0, 0, 0);
}

void VqganModel::quantize(const float* latents, int64_t batch, int32_t* codes, float* quantized) {
  const int64_t s = config_.latent_size();
  device::VqNearestArgs a;
  a.z = view(latents, {batch, config_.codebook_dim, s, s});
  a.codebook = view(param("quantize.embedding.weight"), {config_.codebook_size, config_.codebook_dim});
  a.indices = view(codes, {batch, s, s});
  if (quantized) a.quantized = view(quantized, {batch, config_.codebook_dim, s, s});
  ctx_.backend->vq_nearest(a, *ctx_.compute);
}

void VqganModel::decode(const float* quantized, int64_t batch, float* images) {
  ensure_workspace(batch);
  const VqganConfig& c = config_;
  const int64_t levels = c.levels(), last = c.level_channels(levels - 1);
  int64_t r = c.latent_size();
  conv("post_quant_conv", quantized, c.codebook_dim, r, r, buf(0), c.latent_channels, 1, 1, 0, 0, 0, 0);
  conv("decoder.conv_in", buf(0), c.latent_channels, r, r, buf(1), last, 3, 1, 1, 1, 1, 1);
  Act x{1, last, r, r};
  for (int64_t m = 0; m < c.mid_res_blocks; ++m) x = resnet("decoder.mid_block.resnets." + std::to_string(m), x, x.c);
  for (int64_t i = 0; i < levels; ++i) {
    const std::string block = "decoder.up_blocks." + std::to_string(i);
    for (int64_t m = 0; m < c.decoder_res_blocks; ++m)
      x = resnet(block + ".resnets." + std::to_string(m), x, c.level_channels(levels - 1 - i));
    if (i + 1 < levels) {  // nearest x2, then 3x3
      const int u = (x.buffer + 1) % 4, v = (x.buffer + 2) % 4;
      ctx_.backend->upsample_nearest2x(
          device::UpsampleNearest2xArgs{view(buf(x.buffer), {batch_, x.c, r, r}), view(buf(u), {batch_, x.c, 2 * r, 2 * r})},
          *ctx_.compute);
      r *= 2;
      conv(block + ".upsamplers.0.conv", buf(u), x.c, r, r, buf(v), x.c, 3, 1, 1, 1, 1, 1);
      x = Act{v, x.c, r, r};
    }
  }
  const int t = (x.buffer + 1) % 4;
  norm_silu("decoder.conv_norm_out", buf(x.buffer), x.c, r, r, buf(t));
  conv("decoder.conv_out", buf(t), x.c, r, r, images, c.out_channels, 3, 1, 1, 1, 1, 1);
}

void VqganModel::decode_codes(const int32_t* codes, int64_t batch, float* images) {
  ensure_workspace(batch);
  const int64_t s = config_.latent_size();
  ctx_.backend->vq_lookup(
      device::VqLookupArgs{view(codes, {batch, s, s}),
                           view(param("quantize.embedding.weight"), {config_.codebook_size, config_.codebook_dim}),
                           view(quantized_.data(), {batch, config_.codebook_dim, s, s})},
      *ctx_.compute);
  decode(quantized_.data(), batch, images);
}

}  // namespace rw::vision
