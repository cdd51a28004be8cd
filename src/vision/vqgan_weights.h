// vqgan_weights.h: the VQGAN's weight file (VQ.h5, ours): /vqgan/<diffusers name> float32 at
// PyTorch's shape (vqgan_config.h: convolutions [out, in, kh, kw]) for every tensor of
// vqgan_tensors(config), and the config as root attributes with VqganConfig's field names
// (int64; channel_multipliers an int64 list; norm_eps float64), plus format = "ringworld-vqgan"
// and source (where the weights came from: "diffusers-vq:DIR", "lwm-vqgan:FILE"). Written by one
// process, atomically (io/tensor_h5.h); read whole by every rank that runs the model.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/vision/vqgan_config.h"

namespace rw::vision {

// Writes `path`: fetch(tensor, out) fills tensor.count() floats of each tensor, in
// vqgan_tensors order; progress(done, total) after each. Throws InputError.
void write_vqgan_weights(const std::string& path, const VqganConfig& config, const std::string& source,
                         const std::function<void(const VqganTensor&, float*)>& fetch,
                         const std::function<void(int64_t, int64_t)>& progress = {});

struct VqganWeights {
  VqganConfig config;
  std::string source;
  std::vector<float> values;  // vqgan_tensors(config) back to back (VqganModel::load_weights)
};

// Reads and validates (the config; every tensor present, float32, its shape; nothing unknown
// under /vqgan). Throws InputError naming the file and the tensor.
VqganWeights read_vqgan_weights(const std::string& path);
VqganConfig read_vqgan_config(const std::string& path);  // the config alone (no tensor read)

}  // namespace rw::vision
