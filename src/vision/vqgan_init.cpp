// vqgan_init.cpp: see vqgan_init.h.
#include "src/vision/vqgan_init.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "device/exec_context.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"
#include "src/vision/vqgan_model.h"

namespace rw::vision {
namespace {

uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Stream {
  uint64_t state;
  explicit Stream(uint64_t seed) : state(mix(seed)) {}
  uint64_t next() { return mix(state += 0x9e3779b97f4a7c15ULL); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

bool is_norm(const std::string& name) {
  const std::size_t dot = name.rfind('.');
  const std::size_t start = name.rfind('.', dot - 1);
  const std::string module = name.substr(start == std::string::npos ? 0 : start + 1, dot - (start == std::string::npos ? 0 : start + 1));
  return module.find("norm") != std::string::npos;
}

double squared_distance(const float* a, const float* b, int64_t dim) {
  double s = 0;
  for (int64_t d = 0; d < dim; ++d) {
    const double x = static_cast<double>(a[d]) - b[d];
    s += x * x;
  }
  return s;
}

// The nearest centre of v (ties to the lowest index) and its squared distance.
std::pair<int64_t, double> nearest(const float* v, const std::vector<float>& centres, int64_t dim) {
  const int64_t k = static_cast<int64_t>(centres.size()) / dim;
  int64_t best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < k; ++c) {
    const double d = squared_distance(v, centres.data() + c * dim, dim);
    if (d < best_d) best_d = d, best = c;
  }
  return {best, best_d};
}


bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool starts_with(const std::string& s, const std::string& head) { return s.compare(0, head.size(), head) == 0; }

// The pool encoder's value of one encoder / quant_conv tensor (see vqgan_init.h).
void pool_tensor(const VqganTensor& t, float* out) {
  std::fill(out, out + t.count(), 0.0f);
  if (t.shape.size() != 4) {  // biases 0; GroupNorm weight 1, bias 0
    if (is_norm(t.name) && ends_with(t.name, ".weight")) std::fill(out, out + t.count(), 1.0f);
    return;
  }
  const int64_t o = t.shape[0], i = t.shape[1], kh = t.shape[2], kw = t.shape[3];
  auto at = [&](int64_t oc, int64_t ic, int64_t y, int64_t x) -> float& { return out[((oc * i + ic) * kh + y) * kw + x]; };
  if (ends_with(t.name, ".conv2.weight") || ends_with(t.name, ".conv1.weight")) return;  // residual branches 0
  for (int64_t c = 0; c < std::min<int64_t>({o, i, 3}); ++c) {
    if (t.name.find(".downsamplers.") != std::string::npos) {
      // Output (r, q) sees input rows 2r..2r+2, columns 2q..2q+2 (the padding is at the bottom
      // and right): the mean of the 2x2 block at (2r, 2q), never the padding.
      at(c, c, 0, 0) = at(c, c, 0, 1) = at(c, c, 1, 0) = at(c, c, 1, 1) = 0.25f;
    } else {
      at(c, c, kh / 2, kw / 2) = 1.0f;  // conv_in, conv_shortcut, conv_out, quant_conv: the centre tap
    }
  }
}

}  // namespace

std::vector<float> make_vqgan_weights(const VqganConfig& config, uint64_t seed, VqganEncoderInit encoder) {
  config.validate();
  if (encoder == VqganEncoderInit::pool) {
    if (config.in_channels != 3) throw InputError("the pool encoder takes RGB frames (in_channels 3)");
    for (int64_t l = 0; l < config.levels(); ++l)
      if (config.level_channels(l) < 3) throw InputError("the pool encoder needs every level at least 3 channels wide");
    if (config.latent_channels < 3 || config.codebook_dim < 3)
      throw InputError("the pool encoder needs latent_channels and codebook_dim of at least 3");
  }
  const std::vector<VqganTensor> tensors = vqgan_tensors(config);
  std::vector<float> values;
  values.reserve(static_cast<std::size_t>(vqgan_parameter_counts(config).total()));
  double bound = 0;  // the last convolution's 1/sqrt(fan_in): its bias follows its weight
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const VqganTensor& t = tensors[i];
    if (encoder == VqganEncoderInit::pool && (starts_with(t.name, "encoder.") || starts_with(t.name, "quant_conv."))) {
      const std::size_t at = values.size();
      values.resize(at + static_cast<std::size_t>(t.count()));
      pool_tensor(t, values.data() + at);
      continue;
    }
    Stream rng(seed * 0x100000001b3ULL + i);
    auto uniform = [&](double b) {
      for (int64_t j = 0; j < t.count(); ++j) values.push_back(static_cast<float>((2 * rng.uniform() - 1) * b));
    };
    if (t.name == "quantize.embedding.weight") {
      uniform(1.0 / static_cast<double>(config.codebook_size));
    } else if (t.shape.size() == 4) {
      bound = 1.0 / std::sqrt(static_cast<double>(t.shape[1] * t.shape[2] * t.shape[3]));
      uniform(bound);
    } else if (is_norm(t.name)) {
      values.insert(values.end(), static_cast<std::size_t>(t.count()), ends_with(t.name, ".weight") ? 1.0f : 0.0f);
    } else {
      RW_CHECK(bound > 0, "make_vqgan_weights: a bias before any convolution: " + t.name);
      uniform(bound);
    }
  }
  return values;
}

int64_t codebook_offset(const VqganConfig& config) {
  int64_t offset = 0;
  for (const VqganTensor& t : vqgan_tensors(config)) {
    if (t.name == "quantize.embedding.weight") return offset;
    offset += t.count();
  }
  RW_CHECK(false, "codebook_offset: no quantize.embedding.weight");
  return -1;
}

std::vector<float> fit_codebook_kmeans(const std::vector<float>& vectors, int64_t dim, int64_t k, int iterations,
                                       uint64_t seed) {
  if (dim < 1 || k < 1 || iterations < 0) throw InputError("k-means: dim and k must be >= 1, iterations >= 0");
  const int64_t n = static_cast<int64_t>(vectors.size()) / dim;
  if (n < 1 || static_cast<int64_t>(vectors.size()) != n * dim) throw InputError("k-means: no vectors to fit (or a partial one)");
  Stream rng(seed ^ 0x6b6d65616e73ULL);
  std::vector<float> centres;
  centres.reserve(static_cast<std::size_t>(k * dim));
  auto take = [&](int64_t i) { centres.insert(centres.end(), vectors.begin() + i * dim, vectors.begin() + (i + 1) * dim); };
  // k-means++ seeding; nearest[i]: squared distance of vector i to its nearest chosen centre.
  take(static_cast<int64_t>(rng.next() % static_cast<uint64_t>(n)));
  std::vector<double> near(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) near[i] = squared_distance(vectors.data() + i * dim, centres.data(), dim);
  for (int64_t c = 1; c < k; ++c) {
    double total = 0;
    for (double d : near) total += d;
    int64_t pick = 0;
    if (total > 0) {
      double r = rng.uniform() * total;
      for (pick = 0; pick < n - 1; ++pick) {
        r -= near[pick];
        if (r < 0 && near[pick] > 0) break;
      }
    } else {
      pick = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(n));  // every vector is a centre already
    }
    take(pick);
    const float* added = centres.data() + c * dim;
    for (int64_t i = 0; i < n; ++i) near[i] = std::min(near[i], squared_distance(vectors.data() + i * dim, added, dim));
  }
  // Lloyd's iterations.
  std::vector<double> sums(static_cast<std::size_t>(k * dim));
  std::vector<int64_t> counts(static_cast<std::size_t>(k));
  for (int it = 0; it < iterations; ++it) {
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (int64_t i = 0; i < n; ++i) {
      const float* v = vectors.data() + i * dim;
      const int64_t c = nearest(v, centres, dim).first;
      ++counts[c];
      for (int64_t d = 0; d < dim; ++d) sums[c * dim + d] += v[d];
    }
    for (int64_t c = 0; c < k; ++c)
      if (counts[c] > 0)
        for (int64_t d = 0; d < dim; ++d) centres[c * dim + d] = static_cast<float>(sums[c * dim + d] / counts[c]);
  }
  return centres;
}

double quantization_error(const std::vector<float>& vectors, const std::vector<float>& centres, int64_t dim) {
  const int64_t n = static_cast<int64_t>(vectors.size()) / dim;
  if (n < 1 || centres.empty()) throw InputError("quantization error: no vectors or no centres");
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += nearest(vectors.data() + i * dim, centres, dim).second;
  return sum / static_cast<double>(n);
}

std::vector<float> encoder_latent_vectors(device::Backend& backend, const VqganConfig& config,
                                          const std::vector<float>& weights, const float* frames, int64_t n,
                                          int64_t max_batch) {
  VqganModel model(device::ExecContext::on_default_stream(backend), config);
  model.load_weights(weights);
  const int64_t b_max = std::max<int64_t>(1, std::min(max_batch, n));
  const int64_t image_floats = config.in_channels * config.image_size * config.image_size;
  const int64_t s = config.latent_size(), dim = config.codebook_dim, latent_floats = dim * s * s;
  device::DeviceArray<float> images(backend, static_cast<std::size_t>(b_max * image_floats));
  device::DeviceArray<float> latents(backend, static_cast<std::size_t>(b_max * latent_floats));
  std::vector<float> host_images(static_cast<std::size_t>(b_max * image_floats), 0.0f);
  std::vector<float> host_latents(static_cast<std::size_t>(b_max * latent_floats));
  std::vector<float> out(static_cast<std::size_t>(n * latent_floats));
  for (int64_t first = 0; first < n; first += b_max) {
    const int64_t b = std::min(b_max, n - first);
    std::copy(frames + first * image_floats, frames + (first + b) * image_floats, host_images.begin());
    images.upload(host_images.data());
    model.encode(images.data(), b, latents.data());
    latents.download(host_latents.data());
    // [b, dim, s, s] -> one dim-vector per position.
    for (int64_t f = 0; f < b; ++f)
      for (int64_t p = 0; p < s * s; ++p)
        for (int64_t d = 0; d < dim; ++d)
          out[static_cast<std::size_t>(((first + f) * s * s + p) * dim + d)] = host_latents[static_cast<std::size_t>(f * latent_floats + d * s * s + p)];
  }
  return out;
}

}  // namespace rw::vision
