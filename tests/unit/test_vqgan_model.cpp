// test_vqgan_model.cpp: the VQGAN forward passes (src/vision/vqgan_model.h) on the cpu and
// sim-gpu backends against a host implementation written out plainly below (loops over the
// definitions of vqgan_config.h), on seeded random weights of the tiny configurations.
//
// Tolerance rule (tests/test_support.h, the project's rule for whole computations): a result R
// whose fp64 reference is G passes when max|R - G| <= 2 max|N - G| + 8 FLT_EPSILON max|G|,
// N the same host implementation run in fp32 (naive loops, fp32 sums) from the same inputs: no
// more than twice as wrong as a straightforward fp32 implementation, plus a few ulps of scale.
// Codes: the code the model chose for its latents is the fp64 nearest one wherever the two
// nearest are further apart than the comparison's rounding (as test_vision_kernels.cpp).
// Also: decode(encode(x)) runs with the right shapes, sim-gpu gives cpu's bits (the same
// kernels), the workspace is allocated once. About 1 s.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "device/backend.h"
#include "src/common/input_error.h"
#include "src/vision/vqgan_config.h"
#include "src/vision/vqgan_model.h"
#include "tests/test_support.h"

using namespace rw;
using namespace rw::vision;

namespace {

// ---- the host implementation, in T arithmetic (double: the reference; float: the naive one) ----

template <class T>
struct Image {
  int64_t n = 0, c = 0, h = 0, w = 0;
  std::vector<T> v;
  T& at(int64_t b, int64_t ch, int64_t i, int64_t j) { return v[((b * c + ch) * h + i) * w + j]; }
  T at(int64_t b, int64_t ch, int64_t i, int64_t j) const { return v[((b * c + ch) * h + i) * w + j]; }
};

template <class T>
Image<T> make_image(int64_t n, int64_t c, int64_t h, int64_t w) {
  Image<T> x;
  x.n = n, x.c = c, x.h = h, x.w = w;
  x.v.assign(static_cast<std::size_t>(n * c * h * w), T(0));
  return x;
}

template <class T>
class HostVqgan {
 public:
  HostVqgan(const VqganConfig& config, const std::vector<float>& weights) : c_(config) {
    std::size_t offset = 0;
    for (const VqganTensor& t : vqgan_tensors(config)) {
      p_[t.name].assign(weights.begin() + offset, weights.begin() + offset + t.count());
      offset += t.count();
    }
  }

  Image<T> encode(const Image<T>& images) const {
    const int64_t levels = c_.levels();
    Image<T> x = conv("encoder.conv_in", images, c_.level_channels(0), 3, 1, 1, 1, 1, 1);
    for (int64_t i = 0; i < levels; ++i) {
      const std::string block = "encoder.down_blocks." + std::to_string(i);
      for (int64_t m = 0; m < c_.encoder_res_blocks; ++m)
        x = resnet(block + ".resnets." + std::to_string(m), x, c_.level_channels(i));
      if (i + 1 < levels) x = conv(block + ".downsamplers.0.conv", x, x.c, 3, 2, 0, 1, 0, 1);
    }
    for (int64_t m = 0; m < c_.mid_res_blocks; ++m) x = resnet("encoder.mid_block.resnets." + std::to_string(m), x, x.c);
    x = conv("encoder.conv_out", norm_silu("encoder.conv_norm_out", x), c_.latent_channels, 3, 1, 1, 1, 1, 1);
    return conv("quant_conv", x, c_.codebook_dim, 1, 1, 0, 0, 0, 0);
  }

  Image<T> decode(const Image<T>& quantized) const {
    const int64_t levels = c_.levels();
    Image<T> x = conv("post_quant_conv", quantized, c_.latent_channels, 1, 1, 0, 0, 0, 0);
    x = conv("decoder.conv_in", x, c_.level_channels(levels - 1), 3, 1, 1, 1, 1, 1);
    for (int64_t m = 0; m < c_.mid_res_blocks; ++m) x = resnet("decoder.mid_block.resnets." + std::to_string(m), x, x.c);
    for (int64_t i = 0; i < levels; ++i) {
      const std::string block = "decoder.up_blocks." + std::to_string(i);
      for (int64_t m = 0; m < c_.decoder_res_blocks; ++m)
        x = resnet(block + ".resnets." + std::to_string(m), x, c_.level_channels(levels - 1 - i));
      if (i + 1 < levels) {
        Image<T> up = make_image<T>(x.n, x.c, 2 * x.h, 2 * x.w);
        for (int64_t b = 0; b < x.n; ++b)
          for (int64_t ch = 0; ch < x.c; ++ch)
            for (int64_t r = 0; r < up.h; ++r)
              for (int64_t q = 0; q < up.w; ++q) up.at(b, ch, r, q) = x.at(b, ch, r / 2, q / 2);
        x = conv(block + ".upsamplers.0.conv", up, x.c, 3, 1, 1, 1, 1, 1);
      }
    }
    return conv("decoder.conv_out", norm_silu("decoder.conv_norm_out", x), c_.out_channels, 3, 1, 1, 1, 1, 1);
  }

  // The codebook rows of codes [n, s, s] as latents [n, dim, s, s].
  Image<T> lookup(const std::vector<int32_t>& codes, int64_t n) const {
    const int64_t s = c_.latent_size(), dim = c_.codebook_dim;
    const std::vector<T>& e = p_.at("quantize.embedding.weight");
    Image<T> q = make_image<T>(n, dim, s, s);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < s; ++i)
        for (int64_t j = 0; j < s; ++j)
          for (int64_t d = 0; d < dim; ++d) q.at(b, d, i, j) = e[codes[(b * s + i) * s + j] * dim + d];
    return q;
  }

  const std::vector<T>& param(const std::string& name) const { return p_.at(name); }

 private:
  Image<T> conv(const std::string& name, const Image<T>& x, int64_t cout, int64_t k, int stride, int top, int bottom,
                int left, int right) const {
    const std::vector<T>& wt = p_.at(name + ".weight");
    const std::vector<T>& bias = p_.at(name + ".bias");
    Image<T> y = make_image<T>(x.n, cout, (x.h + top + bottom - k) / stride + 1, (x.w + left + right - k) / stride + 1);
    for (int64_t b = 0; b < x.n; ++b)
      for (int64_t co = 0; co < cout; ++co)
        for (int64_t i = 0; i < y.h; ++i)
          for (int64_t j = 0; j < y.w; ++j) {
            T s = bias[co];
            for (int64_t ci = 0; ci < x.c; ++ci)
              for (int64_t p = 0; p < k; ++p)
                for (int64_t q = 0; q < k; ++q) {
                  const int64_t r = i * stride + p - top, col = j * stride + q - left;
                  if (r >= 0 && r < x.h && col >= 0 && col < x.w) s += wt[((co * x.c + ci) * k + p) * k + q] * x.at(b, ci, r, col);
                }
            y.at(b, co, i, j) = s;
          }
    return y;
  }

  Image<T> norm_silu(const std::string& name, const Image<T>& x) const {
    const std::vector<T>& g = p_.at(name + ".weight");
    const std::vector<T>& beta = p_.at(name + ".bias");
    const int64_t groups = c_.norm_groups, per = x.c / groups, count = per * x.h * x.w;
    Image<T> y = x;
    for (int64_t b = 0; b < x.n; ++b)
      for (int64_t gr = 0; gr < groups; ++gr) {
        const std::size_t base = static_cast<std::size_t>((b * x.c + gr * per) * x.h * x.w);
        T mean = 0, var = 0;
        for (int64_t i = 0; i < count; ++i) mean += x.v[base + i];
        mean /= static_cast<T>(count);
        for (int64_t i = 0; i < count; ++i) var += (x.v[base + i] - mean) * (x.v[base + i] - mean);
        var /= static_cast<T>(count);
        const T inv = T(1) / std::sqrt(var + static_cast<T>(c_.norm_eps));
        for (int64_t i = 0; i < count; ++i) {
          const int64_t ch = gr * per + i / (x.h * x.w);
          const T v = (x.v[base + i] - mean) * inv * g[ch] + beta[ch];
          y.v[base + i] = v / (T(1) + std::exp(-v));
        }
      }
    return y;
  }

  Image<T> resnet(const std::string& name, const Image<T>& x, int64_t out) const {
    Image<T> h = conv(name + ".conv1", norm_silu(name + ".norm1", x), out, 3, 1, 1, 1, 1, 1);
    h = conv(name + ".conv2", norm_silu(name + ".norm2", h), out, 3, 1, 1, 1, 1, 1);
    const Image<T> shortcut = x.c != out ? conv(name + ".conv_shortcut", x, out, 1, 1, 0, 0, 0, 0) : x;
    for (std::size_t i = 0; i < h.v.size(); ++i) h.v[i] += shortcut.v[i];
    return h;
  }

  VqganConfig c_;
  std::map<std::string, std::vector<T>> p_;
};

// Seeded weights of a scale that keeps activations of order 1: convolutions uniform with
// variance 1/fan_in, GroupNorm scales 1 +- 0.2, biases +- 0.1, the codebook +- 1.
std::vector<float> random_weights(const VqganConfig& config, uint64_t seed) {
  test::Rng rng(seed);
  std::vector<float> w;
  for (const VqganTensor& t : vqgan_tensors(config)) {
    const bool bias = t.name.size() > 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0;
    const bool norm = !bias && t.shape.size() == 1;
    const bool conv = t.shape.size() == 4;
    const float scale = conv ? static_cast<float>(std::sqrt(3.0 / (t.shape[1] * t.shape[2] * t.shape[3]))) : 1.f;
    for (int64_t i = 0; i < t.count(); ++i)
      w.push_back(bias ? rng.symmetric(0.1f) : norm ? 1.f + rng.symmetric(0.2f) : rng.symmetric(scale));
  }
  return w;
}

template <class T>
Image<T> as_image(const std::vector<float>& v, int64_t n, int64_t c, int64_t h, int64_t w) {
  Image<T> x = make_image<T>(n, c, h, w);
  for (std::size_t i = 0; i < v.size(); ++i) x.v[i] = v[i];
  return x;
}

// The tolerance rule of the header.
void check_rule(const std::string& what, const std::vector<float>& got, const Image<double>& gold,
                const Image<float>& naive) {
  REQUIRE(got.size() == gold.v.size());
  double err = 0, naive_err = 0, scale = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    err = std::max(err, std::fabs(got[i] - gold.v[i]));
    naive_err = std::max(naive_err, std::fabs(naive.v[i] - gold.v[i]));
    scale = std::max(scale, std::fabs(gold.v[i]));
  }
  const double tolerance = 2 * naive_err + 8 * FLT_EPSILON * scale;
  INFO(what << ": max |error| " << err << ", naive fp32 " << naive_err << ", scale " << scale << ", tolerance "
            << tolerance);
  CHECK(err <= tolerance);
  CHECK(scale > 0.1);  // the comparison is not vacuous
}

struct Outputs {
  std::vector<float> latents, quantized, images;
  std::vector<int32_t> codes;
};

// encode -> quantize -> decode_codes on one backend; everything read back at the end.
Outputs run_model(device::Backend& be, const VqganConfig& config, const std::vector<float>& weights,
                  const std::vector<float>& images, int64_t batch, int* allocations) {
  auto stream = be.create_stream();
  VqganModel model(device::ExecContext{&be, stream.get()}, config);
  model.load_weights(weights);
  const int64_t s = config.latent_size(), S = config.image_size;
  device::DeviceArray<float> in(be, images.size()), z(be, batch * config.codebook_dim * s * s),
      q(be, batch * config.codebook_dim * s * s), out(be, batch * config.out_channels * S * S);
  device::DeviceArray<int32_t> codes(be, batch * s * s);
  in.upload(images.data());
  model.encode(in.data(), batch, z.data());
  model.quantize(z.data(), batch, codes.data(), q.data());
  model.decode_codes(codes.data(), batch, out.data());
  const int after_first = model.allocations();
  model.encode(in.data(), batch, z.data());  // the same batch again: no allocation
  *allocations = model.allocations() - after_first;
  be.synchronize(*stream);
  Outputs o;
  o.latents.resize(z.size());
  o.quantized.resize(q.size());
  o.images.resize(out.size());
  o.codes.resize(codes.size());
  z.download(o.latents.data());
  q.download(o.quantized.data());
  out.download(o.images.data());
  codes.download(o.codes.data());
  return o;
}

void check_config(const std::string& preset, int64_t batch) {
  const VqganConfig config = VqganConfig::preset(preset);
  const std::vector<float> weights = random_weights(config, 7);
  const int64_t S = config.image_size, s = config.latent_size(), dim = config.codebook_dim;
  const std::vector<float> images = test::random_vector(batch * config.in_channels * S * S, 11);
  const HostVqgan<double> ref(config, weights);
  const HostVqgan<float> naive(config, weights);

  auto cpu = device::create_backend("cpu");
  int allocations = -1;
  const Outputs o = run_model(*cpu, config, weights, images, batch, &allocations);
  CHECK(allocations == 0);
  // Shapes: the arrays were sized from the config; the host passes give the same shapes.
  const Image<double> gold_z = ref.encode(as_image<double>(images, batch, config.in_channels, S, S));
  REQUIRE(gold_z.c == dim);
  REQUIRE(gold_z.h == s);
  check_rule(preset + " encode", o.latents, gold_z, naive.encode(as_image<float>(images, batch, config.in_channels, S, S)));

  // Codes: the fp64 nearest code of the model's own latents (separates the two checks).
  const std::vector<double>& e = ref.param("quantize.embedding.weight");
  int exact = 0;
  for (int64_t t = 0; t < batch * s * s; ++t) {
    const int64_t b = t / (s * s), p = t % (s * s);
    std::vector<double> d(config.codebook_size, 0.0);
    for (int64_t k = 0; k < config.codebook_size; ++k)
      for (int64_t j = 0; j < dim; ++j) {
        const double diff = o.latents[(b * dim + j) * s * s + p] - e[k * dim + j];
        d[k] += diff * diff;
      }
    const int64_t arg = std::min_element(d.begin(), d.end()) - d.begin();
    std::vector<double> sorted = d;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(o.codes[t] >= 0);
    REQUIRE(o.codes[t] < config.codebook_size);
    // 2 (dim + 2) u32 on the larger distance (test_vision_kernels.cpp's basis).
    const double margin = 2.0 * (dim + 2) * (1.0 / (1 << 24)) * sorted[1];
    CHECK(d[o.codes[t]] - sorted[0] <= margin);
    if (sorted[1] - sorted[0] > margin) {
      CHECK(o.codes[t] == arg);
      ++exact;
    }
    for (int64_t j = 0; j < dim; ++j) CHECK(o.quantized[(b * dim + j) * s * s + p] == static_cast<float>(e[o.codes[t] * dim + j]));
  }
  CHECK(exact > 0);

  // Decoding the model's codes.
  check_rule(preset + " decode_codes", o.images, ref.decode(ref.lookup(o.codes, batch)),
             naive.decode(naive.lookup(o.codes, batch)));
  CHECK(o.images.size() == static_cast<std::size_t>(batch * config.out_channels * S * S));

  // sim-gpu runs the same kernels: the same bits.
  auto sim = device::create_backend("sim-gpu");
  const Outputs so = run_model(*sim, config, weights, images, batch, &allocations);
  CHECK(allocations == 0);
  CHECK(so.latents == o.latents);
  CHECK(so.codes == o.codes);
  CHECK(so.images == o.images);
}

}  // namespace

TEST_CASE("the VQGAN model matches the fp64 host implementation (tiny configurations)", "[vision][vqgan_model]") {
  SECTION("tiny: three levels, resampling, quant convs changing width") { check_config("tiny", 2); }
  SECTION("tiny-1: one level") { check_config("tiny-1", 1); }
}

TEST_CASE("the VQGAN model: workspace size, weights count, backends without the kernels", "[vision][vqgan_model]") {
  auto cpu = device::create_backend("cpu");
  CHECK(VqganConfig::lwm().max_activation_floats() == int64_t(256) * 256 * 256);  // the decoder's last level input
  CHECK(VqganConfig::preset("tiny").max_activation_floats() == 16 * 16 * 16);     // the same place, tiny
  VqganModel tiny(device::ExecContext::on_default_stream(*cpu), VqganConfig::preset("tiny"));
  CHECK(tiny.parameter_count() == vqgan_parameter_counts(VqganConfig::preset("tiny")).total());
  CHECK_THROWS_WITH(tiny.load_weights(std::vector<float>(5)), Catch::Contains("5 values for a model of"));
  // Every backend built today has the kernels (the GPU ones since device/cuda/kernels/vision.cu);
  // the refusal guards a backend added without them.
  for (const std::string& name : device::available_backend_names()) {
    auto be = device::create_backend(name);
    if (be->capabilities().vqgan_kernels) continue;
    INFO(name);
    CHECK_THROWS_WITH(VqganModel(device::ExecContext::on_default_stream(*be), VqganConfig::preset("tiny")),
                      Catch::Contains("has no VQGAN kernels"));
  }
}
