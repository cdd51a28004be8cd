// vqgan_weights.cpp: see vqgan_weights.h.
#include "src/vision/vqgan_weights.h"

#include <set>

#include "io/tensor_h5.h"
#include "src/common/input_error.h"

namespace rw::vision {
namespace {

constexpr const char* kFormat = "ringworld-vqgan";

struct IntField {
  const char* name;
  int64_t VqganConfig::*field;
};
const IntField kIntFields[] = {
    {"image_size", &VqganConfig::image_size},         {"in_channels", &VqganConfig::in_channels},
    {"out_channels", &VqganConfig::out_channels},     {"base_channels", &VqganConfig::base_channels},
    {"encoder_res_blocks", &VqganConfig::encoder_res_blocks}, {"decoder_res_blocks", &VqganConfig::decoder_res_blocks},
    {"mid_res_blocks", &VqganConfig::mid_res_blocks}, {"norm_groups", &VqganConfig::norm_groups},
    {"latent_channels", &VqganConfig::latent_channels}, {"codebook_size", &VqganConfig::codebook_size},
    {"codebook_dim", &VqganConfig::codebook_dim},
};

VqganConfig read_config(const io::TensorH5Reader& in) {
  if (!in.has_attribute("format") || in.string_attribute("format") != kFormat)
    throw InputError("'" + in.path() + "' is not a ringworld VQGAN weight file (no format = \"" + kFormat +
                     "\" attribute; make one with ringworld import --from diffusers-vq or lwm-vqgan)");
  VqganConfig c;
  for (const IntField& f : kIntFields) c.*f.field = in.int_attribute(f.name);
  c.channel_multipliers = in.int_list_attribute("channel_multipliers");
  c.norm_eps = in.real_attribute("norm_eps");
  try {
    c.validate();
  } catch (const InputError& e) {
    throw InputError("'" + in.path() + "': " + e.what());
  }
  return c;
}

}  // namespace

void write_vqgan_weights(const std::string& path, const VqganConfig& config, const std::string& source,
                         const std::function<void(const VqganTensor&, float*)>& fetch,
                         const std::function<void(int64_t, int64_t)>& progress) {
  config.validate();
  io::TensorH5Writer out(path);
  out.attribute("format", std::string(kFormat));
  out.attribute("source", source);
  for (const IntField& f : kIntFields) out.attribute(f.name, config.*f.field);
  out.attribute("channel_multipliers", config.channel_multipliers);
  out.attribute("norm_eps", config.norm_eps);
  const std::vector<VqganTensor> tensors = vqgan_tensors(config);
  std::vector<float> buffer;
  int64_t done = 0;
  for (const VqganTensor& t : tensors) {
    buffer.assign(static_cast<std::size_t>(t.count()), 0.0f);
    fetch(t, buffer.data());
    out.write_f32("/vqgan/" + t.name, t.shape, buffer.data());
    if (progress) progress(++done, static_cast<int64_t>(tensors.size()));
  }
  out.finish();
}

VqganConfig read_vqgan_config(const std::string& path) {
  const io::TensorH5Reader in(path);
  return read_config(in);
}

VqganWeights read_vqgan_weights(const std::string& path) {
  const io::TensorH5Reader in(path);
  VqganWeights w;
  w.config = read_config(in);
  w.source = in.has_attribute("source") ? in.string_attribute("source") : "";
  const std::vector<VqganTensor> tensors = vqgan_tensors(w.config);
  std::set<std::string> expected;
  int64_t total = 0;
  for (const VqganTensor& t : tensors) {
    expected.insert(t.name);
    total += t.count();
  }
  for (const std::string& name : in.dataset_names("/vqgan"))
    if (!expected.count(name))
      throw InputError("'" + path + "': /vqgan/" + name + " is not a tensor of " + w.config.describe());
  w.values.resize(static_cast<std::size_t>(total));
  int64_t offset = 0;
  for (const VqganTensor& t : tensors) {
    in.read_f32("/vqgan/" + t.name, t.shape, w.values.data() + offset);
    offset += t.count();
  }
  return w;
}

}  // namespace rw::vision
