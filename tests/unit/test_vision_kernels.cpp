// test_vision_kernels.cpp: the VQGAN kernels (device/vision_args.h: conv2d, group_norm, silu,
// upsample_nearest2x, vq_nearest, vq_lookup) on every backend under test that has them
// (Capabilities::vqgan_kernels: all of them; backends_under_test.h), in fp32 and
// bf16 storage, against fp64 references written out plainly below (loops over the definitions,
// on the values as stored), and their argument checks (refusals name the problem).
//
// Tolerance basis (as test_backend_conformance.cpp's header, style.md item 6): a kernel that
// computes in fp32 makes, per output, an error of at most c * u32 * S, u32 = 2^-24, c the
// number of roundings on the output's longest dependency chain (a sum of n terms: n) and S the
// magnitude they act on (written per kernel); an output stored in bf16 is rounded once more:
// + u_bf16 * max|G|, u_bf16 = 2^-8. Copies (upsampling, code lookup, quantized vectors) must be
// exact. The CPU kernels do better (fp64 statistics and distances); the bound is the contract's.
//
// About 1 s on one core (the largest case, a convolution whose im2col takes two row blocks,
// dominates). ctest runs it on cpu, cpu-reference and sim-gpu (test "device"), on the GPU
// kernels under the SIMT emulation, cuda-emu (warp 32) and hip-emu (warp 64) (test
// "device_gpu_emu": about 2 s for both, the same shapes), and on a real GPU (test_gpu_cuda /
// test_gpu_hip).
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/cpu/vision_ops.h"
#include "src/common/fatal.h"
#include "tests/fatal_in_child.h"
#include "tests/test_support.h"
#include "tests/unit/backends_under_test.h"

using namespace rw;
using namespace rw::device;

namespace {

constexpr double kU32 = 1.0 / (1 << 24);
constexpr double kUbf16 = 1.0 / (1 << 8);

double stored_as(DType t, double x) {
  if (t == DType::bf16) return float_from_bf16(bf16_from_float(static_cast<float>(x)));
  if (t == DType::i32) return static_cast<int32_t>(x);
  return static_cast<float>(x);
}

// A device tensor (f32, bf16 or i32) with the values it holds as stored (the references' inputs).
class Tensor {
 public:
  Tensor(Backend& be, DType dtype, const std::vector<double>& values) : be_(be), dtype_(dtype) {
    stored.resize(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) stored[i] = stored_as(dtype, values[i]);
    std::vector<unsigned char> bytes(values.size() * dtype_size(dtype));
    for (std::size_t i = 0; i < values.size(); ++i) encode(stored[i], bytes.data() + i * dtype_size(dtype));
    data_ = be.allocate(std::max<std::size_t>(bytes.size(), 1));
    be.copy_to_device(data_, bytes.data(), bytes.size());
  }
  ~Tensor() { be_.release(data_); }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  TensorView view(std::initializer_list<int64_t> shape) { return make_view<void*>(data_, dtype_, shape); }
  std::vector<double> read() const {
    std::vector<unsigned char> bytes(stored.size() * dtype_size(dtype_));
    be_.copy_to_host(bytes.data(), data_, bytes.size());
    std::vector<double> out(stored.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = decode(bytes.data() + i * dtype_size(dtype_));
    return out;
  }
  std::vector<double> stored;

 private:
  void encode(double x, unsigned char* p) const {
    if (dtype_ == DType::bf16) {
      const bf16_t b = bf16_from_float(static_cast<float>(x));
      std::memcpy(p, &b, 2);
    } else if (dtype_ == DType::i32) {
      const int32_t i = static_cast<int32_t>(x);
      std::memcpy(p, &i, 4);
    } else {
      const float f = static_cast<float>(x);
      std::memcpy(p, &f, 4);
    }
  }
  double decode(const unsigned char* p) const {
    if (dtype_ == DType::bf16) {
      bf16_t b;
      std::memcpy(&b, p, 2);
      return float_from_bf16(b);
    }
    if (dtype_ == DType::i32) {
      int32_t i;
      std::memcpy(&i, p, 4);
      return i;
    }
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  Backend& be_;
  DType dtype_;
  void* data_ = nullptr;
};

std::vector<double> random_values(std::size_t n, uint64_t seed, double scale = 1.0) {
  test::Rng rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = (2 * rng.uniform() - 1) * scale;
  return v;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

double tol(double c, double S, DType out, double out_scale) {
  return c * kU32 * S + (out == DType::bf16 ? kUbf16 * out_scale : 0.0);
}

void check_close(const std::string& what, const std::vector<double>& got, const std::vector<double>& gold,
                 double tolerance) {
  REQUIRE(got.size() == gold.size());
  double err = 0;
  for (std::size_t i = 0; i < got.size(); ++i) err = std::max(err, std::fabs(got[i] - gold[i]));
  INFO(what << ": max |error| " << err << ", tolerance " << tolerance);
  CHECK(err <= tolerance);
}

void check_exact(const std::string& what, const std::vector<double>& got, const std::vector<double>& gold) {
  REQUIRE(got.size() == gold.size());
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < got.size(); ++i) wrong += !(got[i] == gold[i]);
  INFO(what << ": " << wrong << " of " << got.size() << " elements differ");
  CHECK(wrong == 0);
}

struct Ctx {
  Backend& be;
  Stream& stream;
  DType dt;
  std::string label(const std::string& what) const { return be.name() + " " + what + " (" + dtype_name(dt) + ")"; }
};

// ---- conv2d ----

struct ConvCase {
  int64_t n, cin, h, w, cout, kh, kw;
  int stride, top, bottom, left, right;
  bool bias;
};

void test_conv2d_case(Ctx& c, const ConvCase& k, uint64_t seed) {
  const int64_t hout = (k.h + k.top + k.bottom - k.kh) / k.stride + 1;
  const int64_t wout = (k.w + k.left + k.right - k.kw) / k.stride + 1;
  Tensor x(c.be, c.dt, random_values(k.n * k.cin * k.h * k.w, seed)),
      w(c.be, c.dt, random_values(k.cout * k.cin * k.kh * k.kw, seed + 1, 0.5)),
      b(c.be, c.dt, random_values(k.cout, seed + 2)),
      y(c.be, c.dt, std::vector<double>(k.n * k.cout * hout * wout, 7.0));
  Conv2dArgs a;
  a.x = x.view({k.n, k.cin, k.h, k.w});
  a.weight = w.view({k.cout, k.cin, k.kh, k.kw});
  if (k.bias) a.bias = b.view({k.cout});
  a.y = y.view({k.n, k.cout, hout, wout});
  a.stride = k.stride;
  a.pad_top = k.top;
  a.pad_bottom = k.bottom;
  a.pad_left = k.left;
  a.pad_right = k.right;
  c.be.conv2d(a, c.stream);
  c.be.synchronize(c.stream);
  // Reference: the definition, with the padding as an index test.
  std::vector<double> gold(y.stored.size()), mag(y.stored.size());
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t co = 0; co < k.cout; ++co)
      for (int64_t i = 0; i < hout; ++i)
        for (int64_t j = 0; j < wout; ++j) {
          double s = k.bias ? b.stored[co] : 0.0, s_abs = std::fabs(s);
          for (int64_t ci = 0; ci < k.cin; ++ci)
            for (int64_t p = 0; p < k.kh; ++p)
              for (int64_t q = 0; q < k.kw; ++q) {
                const int64_t r = i * k.stride + p - k.top, col = j * k.stride + q - k.left;
                if (r < 0 || r >= k.h || col < 0 || col >= k.w) continue;
                const double term = w.stored[((co * k.cin + ci) * k.kh + p) * k.kw + q] *
                                    x.stored[((n * k.cin + ci) * k.h + r) * k.w + col];
                s += term;
                s_abs += std::fabs(term);
              }
          const std::size_t o = static_cast<std::size_t>(((n * k.cout + co) * hout + i) * wout + j);
          gold[o] = s;
          mag[o] = s_abs;
        }
  // A sum of cin*kh*kw products and the bias: gamma_{K+2} on the sum of |terms|.
  const double K = static_cast<double>(k.cin * k.kh * k.kw);
  check_close(c.label("conv2d " + std::to_string(k.kh) + "x" + std::to_string(k.kw) + " stride " +
                      std::to_string(k.stride) + " pad (" + std::to_string(k.top) + "," + std::to_string(k.bottom) +
                      "," + std::to_string(k.left) + "," + std::to_string(k.right) + ")"),
              y.read(), gold, tol(K + 2, max_abs(mag), c.dt, max_abs(gold)));
}

void test_conv2d(Ctx& c) {
  // n, cin, h, w, cout, kh, kw, stride, top, bottom, left, right, bias
  test_conv2d_case(c, {2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1, true}, 10);    // "same" 3x3, odd sizes
  test_conv2d_case(c, {1, 5, 9, 8, 6, 3, 3, 2, 0, 1, 0, 1, true}, 20);    // the VQGAN downsampler: pad (0,1), stride 2
  test_conv2d_case(c, {2, 3, 8, 6, 2, 3, 3, 2, 0, 1, 0, 1, false}, 25);   // even sizes, no bias
  test_conv2d_case(c, {1, 2, 6, 7, 3, 3, 3, 2, 2, 0, 1, 3, false}, 30);   // other asymmetric pads
  test_conv2d_case(c, {3, 6, 4, 5, 2, 1, 1, 1, 0, 0, 0, 0, true}, 40);    // 1x1 (one GEMM on x)
  test_conv2d_case(c, {1, 4, 5, 7, 3, 1, 1, 2, 0, 0, 0, 0, false}, 50);   // 1x1 stride 2
  test_conv2d_case(c, {1, 2, 5, 4, 3, 2, 3, 1, 0, 0, 1, 1, true}, 60);    // non-square kernel
  // The GPU kernel's tile edges (vision.cu: 8 x 8 output pixels, 16 output channels, input
  // channels in chunks of 8): output sizes, output channels and input channels that are not
  // multiples of them, more than one tile of each.
  test_conv2d_case(c, {1, 9, 11, 10, 17, 3, 3, 1, 1, 1, 1, 1, true}, 62);
  test_conv2d_case(c, {2, 3, 17, 19, 5, 3, 3, 2, 0, 1, 0, 1, true}, 64);  // stride 2: 8 x 9 outputs
  // im2col in more than one row block: cin*kh*kw*wout*hout > cpu::kConvColumnFloats.
  static_assert(64 * 9 * 128 * 128 > cpu::kConvColumnFloats, "the case below must need two row blocks");
  test_conv2d_case(c, {1, 64, 128, 128, 2, 3, 3, 1, 1, 1, 1, 1, true}, 70);
}

// ---- group_norm ----

void test_group_norm_case(Ctx& c, int64_t n, int64_t ch, int64_t h, int64_t w, int groups, bool affine, bool silu,
                          bool in_place, uint64_t seed) {
  // An offset on x (mean far from 0) so that a one-pass variance would show.
  std::vector<double> xv = random_values(n * ch * h * w, seed, 2.0);
  for (double& v : xv) v += 3.0;
  Tensor x(c.be, c.dt, xv), gamma(c.be, c.dt, random_values(ch, seed + 1)),
      beta(c.be, c.dt, random_values(ch, seed + 2)), y(c.be, c.dt, std::vector<double>(xv.size(), 0.0));
  GroupNormArgs a;
  a.x = x.view({n, ch, h, w});
  if (affine) {
    a.weight = gamma.view({ch});
    a.bias = beta.view({ch});
  }
  a.y = in_place ? x.view({n, ch, h, w}) : y.view({n, ch, h, w});
  a.groups = groups;
  a.eps = 1e-6;
  a.silu = silu;
  c.be.group_norm(a, c.stream);
  c.be.synchronize(c.stream);
  const int64_t per = ch / groups, count = per * h * w;
  std::vector<double> gold(xv.size()), mag(xv.size());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      const std::size_t base = static_cast<std::size_t>((b * ch + g * per) * h * w);
      double mean = 0, var = 0;
      for (int64_t i = 0; i < count; ++i) mean += x.stored[base + i];
      mean /= count;
      for (int64_t i = 0; i < count; ++i) var += (x.stored[base + i] - mean) * (x.stored[base + i] - mean);
      var /= count;
      const double inv = 1.0 / std::sqrt(var + a.eps);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t channel = g * per + i / (h * w);
        const double wt = affine ? gamma.stored[channel] : 1.0, bs = affine ? beta.stored[channel] : 0.0;
        const double v = (x.stored[base + i] - mean) * inv * wt + bs;
        gold[base + i] = silu ? v / (1 + std::exp(-v)) : v;
        mag[base + i] = (std::fabs(x.stored[base + i]) + std::fabs(mean)) * inv * std::fabs(wt) + std::fabs(bs);
      }
    }
  // The mean and the variance are sums of `count` terms (gamma_count, relative to |x|), the
  // reciprocal square root and the products and shift a few more roundings, silu (|silu'| <= 1.1)
  // three more: (count + 12) u on (|x| + |mean|) inv |w| + |b|.
  const std::string what = "group_norm " + std::to_string(groups) + " groups" + (affine ? " affine" : "") +
                           (silu ? " +silu" : "") + (in_place ? " in place" : "");
  check_close(c.label(what), in_place ? x.read() : y.read(), gold,
              tol(static_cast<double>(count) + 12, max_abs(mag), c.dt, max_abs(gold)));
}

void test_group_norm(Ctx& c) {
  test_group_norm_case(c, 2, 6, 5, 3, 3, true, false, false, 100);
  test_group_norm_case(c, 1, 8, 4, 7, 4, true, true, false, 110);
  test_group_norm_case(c, 3, 4, 3, 3, 1, false, false, false, 120);  // one group: LayerNorm over C, H, W
  test_group_norm_case(c, 2, 6, 2, 5, 6, true, true, true, 130);     // one channel per group, in place
  test_group_norm_case(c, 1, 6, 11, 13, 2, true, false, false, 140);  // 429 values per group: not a multiple of a block
}

// ---- silu, upsampling ----

void test_silu(Ctx& c) {
  const int64_t n = 1001;
  std::vector<double> xv = random_values(n, 200, 12.0);  // both tails: exp(-x) large and tiny
  Tensor x(c.be, c.dt, xv), y(c.be, c.dt, std::vector<double>(n, 0.0)), z(c.be, c.dt, xv);
  c.be.silu(SiluArgs{x.view({7, 11, 13}), y.view({n})}, c.stream);
  c.be.silu(SiluArgs{z.view({n}), z.view({n})}, c.stream);  // in place
  c.be.synchronize(c.stream);
  std::vector<double> gold(n), mag(n);
  for (int64_t i = 0; i < n; ++i) {
    gold[i] = x.stored[i] / (1 + std::exp(-x.stored[i]));
    mag[i] = std::fabs(gold[i]);
  }
  // exp, add, divide: each output within a few roundings of itself; 4 u on |y| per element (the
  // max over elements makes it an absolute bound).
  std::vector<double> got = y.read(), got_in_place = z.read();
  for (int64_t i = 0; i < n; ++i) {
    const double t = 4 * kU32 * mag[i] + (c.dt == DType::bf16 ? kUbf16 * mag[i] : 0.0) + 1e-300;
    if (std::fabs(got[i] - gold[i]) > t || std::fabs(got_in_place[i] - gold[i]) > t) {
      INFO(c.label("silu") << ": x " << x.stored[i] << " -> " << got[i] << " / " << got_in_place[i] << ", expected "
                           << gold[i]);
      CHECK(false);
      return;
    }
  }
}

void test_upsample(Ctx& c) {
  const int64_t n = 2, ch = 3, h = 5, w = 3;
  Tensor x(c.be, c.dt, random_values(n * ch * h * w, 300)), y(c.be, c.dt, std::vector<double>(n * ch * 4 * h * w, 0));
  c.be.upsample_nearest2x(UpsampleNearest2xArgs{x.view({n, ch, h, w}), y.view({n, ch, 2 * h, 2 * w})}, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> gold(y.stored.size());
  for (int64_t p = 0; p < n * ch; ++p)
    for (int64_t i = 0; i < 2 * h; ++i)
      for (int64_t j = 0; j < 2 * w; ++j) gold[(p * 2 * h + i) * 2 * w + j] = x.stored[(p * h + i / 2) * w + j / 2];
  check_exact(c.label("upsample_nearest2x"), y.read(), gold);
}

// ---- vq_nearest, vq_lookup ----

// The fp64 squared distance of latent vector t (z [n, dim, pixels]) to code k.
double distance(const std::vector<double>& z, const std::vector<double>& codebook, int64_t dim, int64_t pixels,
                int64_t t, int64_t k) {
  const int64_t n = t / pixels, p = t % pixels;
  double s = 0;
  for (int64_t d = 0; d < dim; ++d) {
    const double diff = z[(n * dim + d) * pixels + p] - codebook[k * dim + d];
    s += diff * diff;
  }
  return s;
}

// Runs vq_nearest; checks that quantized holds exactly the chosen rows; returns the indices.
std::vector<double> run_vq(Ctx& c, Tensor& z, Tensor& codebook, int64_t n, int64_t dim, int64_t h, int64_t w,
                           int64_t codes, bool with_quantized, const std::string& what) {
  Tensor indices(c.be, DType::i32, std::vector<double>(n * h * w, -5)),
      quantized(c.be, c.dt, std::vector<double>(n * dim * h * w, 0));
  VqNearestArgs a;
  a.z = z.view({n, dim, h, w});
  a.codebook = codebook.view({codes, dim});
  a.indices = indices.view({n, h, w});
  if (with_quantized) a.quantized = quantized.view({n, dim, h, w});
  c.be.vq_nearest(a, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> idx = indices.read();
  if (with_quantized) {
    std::vector<double> gold(quantized.stored.size());
    for (int64_t t = 0; t < n * h * w; ++t)
      for (int64_t d = 0; d < dim; ++d)
        gold[((t / (h * w)) * dim + d) * h * w + t % (h * w)] =
            idx[t] >= 0 && idx[t] < codes ? codebook.stored[static_cast<int64_t>(idx[t]) * dim + d] : -1e30;
    check_exact(c.label(what + " quantized"), quantized.read(), gold);
  }
  return idx;
}

// Random latents and codebook: the chosen code is within the contract's error of the nearest
// one, and is the nearest wherever the two closest are further apart than that error.
void test_vq_random(Ctx& c, int64_t n, int64_t dim, int64_t h, int64_t w, int64_t codes, uint64_t seed) {
  const int64_t pixels = h * w;
  {
    Tensor z(c.be, c.dt, random_values(n * dim * pixels, seed)), cb(c.be, c.dt, random_values(codes * dim, seed + 1));
    const std::vector<double> idx = run_vq(c, z, cb, n, dim, h, w, codes, true, "vq_nearest random");
    int exact = 0;
    for (int64_t t = 0; t < n * pixels; ++t) {
      double best = 1e300, second = 1e300;
      int64_t arg = -1;
      for (int64_t k = 0; k < codes; ++k) {
        const double d = distance(z.stored, cb.stored, dim, pixels, t, k);
        if (d < best) second = best, best = d, arg = k;
        else if (d < second) second = d;
      }
      REQUIRE(idx[t] >= 0);
      REQUIRE(idx[t] < codes);
      const double got = distance(z.stored, cb.stored, dim, pixels, t, static_cast<int64_t>(idx[t]));
      // Each distance: dim differences, squares and a sum of dim terms: (dim + 2) u relative; two
      // distances compared: 2 (dim + 2) u on the larger.
      const double margin = 2 * (dim + 2) * kU32 * std::max(got, second);
      INFO(c.label("vq_nearest random") << " vector " << t << ": chose " << idx[t] << " at " << got << ", nearest "
                                        << arg << " at " << best);
      CHECK(got - best <= margin);
      if (second - best > margin) {
        CHECK(idx[t] == arg);
        ++exact;
      }
    }
    CHECK(exact > n * pixels / 2);  // the exact check applied to most vectors
  }
}

void test_vq_nearest(Ctx& c) {
  const int64_t dim = 5, codes = 37;
  test_vq_random(c, 2, dim, 3, 4, codes, 400);
  // The GPU kernel's tile edges (vision.cu: codes in tiles of 16, dimensions in tiles of 64, a
  // block of 256 vectors): 70 dimensions, 37 codes, 289 vectors.
  test_vq_random(c, 1, 70, 17, 17, codes, 402);
  // Code i for codebook vector i, every i (z holds the codes in a shuffled order), with and without
  // the quantized output.
  {
    const int64_t cn = 1, ch = 5, cw = 8;  // 40 positions over 37 codes: some twice
    std::vector<double> cbv = random_values(codes * dim, 410);
    std::vector<int64_t> want(cn * ch * cw);
    test::Rng rng(411);
    for (std::size_t t = 0; t < want.size(); ++t) want[t] = t < static_cast<std::size_t>(codes) ? static_cast<int64_t>(t) : rng.below(codes);
    for (std::size_t t = want.size() - 1; t > 0; --t) std::swap(want[t], want[rng.below(static_cast<int>(t + 1))]);
    Tensor cb(c.be, c.dt, cbv);
    std::vector<double> zv(cn * dim * ch * cw);
    for (std::size_t t = 0; t < want.size(); ++t)
      for (int64_t d = 0; d < dim; ++d) zv[d * ch * cw + t] = cb.stored[want[t] * dim + d];
    Tensor z(c.be, c.dt, zv);
    std::vector<double> gold(want.begin(), want.end());
    check_exact(c.label("vq_nearest code i for vector i"), run_vq(c, z, cb, cn, dim, ch, cw, codes, true, "vq_nearest i"),
                gold);
    check_exact(c.label("vq_nearest code i for vector i, no quantized"),
                run_vq(c, z, cb, cn, dim, ch, cw, codes, false, "vq_nearest i"), gold);
  }
  // Ties resolve to the lowest index: duplicated rows (3 = 7 = 21, 5 = 9 = 12, 17 = 30, 18 = 33:
  // within and across the GPU kernel's tiles of 16 codes), and z = 0 exactly between e (index 6)
  // and -e (index 2), every other code further away.
  {
    std::vector<double> cbv = random_values(codes * dim, 420, 1.0);
    for (double& v : cbv) v += v >= 0 ? 4.0 : -4.0;  // every code far from 0 ...
    for (int64_t d = 0; d < dim; ++d) {
      cbv[7 * dim + d] = cbv[21 * dim + d] = cbv[3 * dim + d];
      cbv[30 * dim + d] = cbv[17 * dim + d];
      cbv[33 * dim + d] = cbv[18 * dim + d];
      cbv[9 * dim + d] = cbv[12 * dim + d] = cbv[5 * dim + d];
      cbv[6 * dim + d] = 0.25 * (d + 1);  // ... except +-e, |e| < 1
      cbv[2 * dim + d] = -0.25 * (d + 1);
    }
    Tensor cb(c.be, c.dt, cbv);
    // z [1, dim, 1, 5]: row 21 (= 3 = 7), row 12 (= 5 = 9), 0, row 30 (= 17), row 33 (= 18)
    std::vector<double> zv(dim * 5, 0.0);
    for (int64_t d = 0; d < dim; ++d) {
      zv[d * 5 + 0] = cb.stored[21 * dim + d];
      zv[d * 5 + 1] = cb.stored[12 * dim + d];
      zv[d * 5 + 3] = cb.stored[30 * dim + d];
      zv[d * 5 + 4] = cb.stored[33 * dim + d];
    }
    Tensor z(c.be, c.dt, zv);
    check_exact(c.label("vq_nearest ties to the lowest index"), run_vq(c, z, cb, 1, dim, 1, 5, codes, true, "vq ties"),
                {3, 5, 2, 17, 18});
  }
}

void test_vq_lookup(Ctx& c) {
  const int64_t n = 2, dim = 3, h = 3, w = 2, codes = 11;
  Tensor cb(c.be, c.dt, random_values(codes * dim, 500));
  std::vector<double> iv(n * h * w);
  test::Rng rng(501);
  for (double& v : iv) v = rng.below(codes);
  iv[0] = 0;
  iv[1] = codes - 1;
  Tensor idx(c.be, DType::i32, iv), out(c.be, c.dt, std::vector<double>(n * dim * h * w, 0));
  c.be.vq_lookup(VqLookupArgs{idx.view({n, h, w}), cb.view({codes, dim}), out.view({n, dim, h, w})}, c.stream);
  c.be.synchronize(c.stream);
  std::vector<double> gold(out.stored.size());
  for (int64_t t = 0; t < n * h * w; ++t)
    for (int64_t d = 0; d < dim; ++d)
      gold[((t / (h * w)) * dim + d) * h * w + t % (h * w)] = cb.stored[static_cast<int64_t>(iv[t]) * dim + d];
  check_exact(c.label("vq_lookup"), out.read(), gold);
}

std::vector<std::string> vqgan_backends() {
  std::vector<std::string> names;
  for (const std::string& name : test::backends_under_test())
    if (create_backend(name)->capabilities().vqgan_kernels) names.push_back(name);
  return names;
}

// A fatal() handler that throws, so a refused launch can be checked in this process (the checks
// run before a backend sees the call, so nothing is left half-done).
struct ThrowingFatal {
  ThrowingFatal() {
    set_fatal_handler([](const std::string& message) -> void { throw std::runtime_error(message); });
  }
  ~ThrowingFatal() { set_fatal_handler(nullptr); }
};

// The message fatal() reports while fn runs ("" if none): in a forked child whose fatal handler
// sends it back through a pipe (sim-gpu and the emulations run kernels on stream workers, where
// a throwing handler could not be caught), or, for the real GPU backends (CUDA cannot be used
// in a child forked after it started), here with ThrowingFatal (their launchers run on this thread).
std::string fatal_message_of(const std::string& backend, const std::function<void()>& fn) {
  if (backend == "cuda" || backend == "hip") {
    ThrowingFatal throwing;
    try {
      fn();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }
  const test::ChildResult r = test::fork_and_run(fn);
  CHECK(!r.signaled);
  if (r.exit_code != 0) CHECK(r.exit_code == 97);
  return r.fatal_message;
}

}  // namespace

TEST_CASE("vq_lookup stops at a code outside the codebook on every backend, naming the first", "[vision][kernels]") {
  // 2 x 2 x 3 codes of a codebook of 5; the bad ones at positions 3 (5: one past the end) and 7
  // (-1), or only at 7: the error names the first, in the CPU kernel's words, on every backend.
  for (const std::string& name : vqgan_backends()) {
    for (int first_bad : {3, 7}) {
      INFO("backend " << name << ", first bad code at position " << first_bad);
      const std::string message = fatal_message_of(name, [&] {
        auto be = create_backend(name);
        auto stream = be->create_stream();
        std::vector<double> iv = {0, 4, 2, 1, 3, 0, 4, 2, 1, 1, 0, 3};
        if (first_bad == 3) iv[3] = 5;
        iv[7] = -1;
        Tensor idx(*be, DType::i32, iv), cb(*be, DType::f32, random_values(5 * 4, 600));
        Tensor out(*be, DType::f32, std::vector<double>(2 * 4 * 2 * 3, 0));
        be->vq_lookup(VqLookupArgs{idx.view({2, 2, 3}), cb.view({5, 4}), out.view({2, 4, 2, 3})}, *stream);
        be->synchronize(*stream);
      });
      const std::string code_at = first_bad == 3 ? "code 5 at position 3" : "code -1 at position 7";
      CHECK_THAT(message, Catch::Contains("vq_lookup: " + code_at + " is outside the codebook [0, 5)"));
    }
  }
}

TEST_CASE("the VQGAN kernels match their fp64 references, fp32 and bf16 storage", "[vision][kernels]") {
  const std::vector<std::string> names = vqgan_backends();
  CHECK(!names.empty());
  for (const std::string& name : names) {
    auto backend = create_backend(name);
    auto stream = backend->create_stream();
    for (DType dt : {DType::f32, DType::bf16}) {
      INFO("backend " << name << ", storage " << dtype_name(dt));
      Ctx c{*backend, *stream, dt};
      test_conv2d(c);
      test_group_norm(c);
      test_silu(c);
      test_upsample(c);
      test_vq_nearest(c);
      test_vq_lookup(c);
    }
  }
}

TEST_CASE("the VQGAN kernels refuse bad arguments, naming the problem", "[vision][kernels]") {
  auto be = create_backend("cpu");
  auto& s = be->default_stream();
  ThrowingFatal throwing;
  std::vector<float> x(2 * 6 * 4 * 4), y(x.size()), w(6 * 6 * 9), g(6), b(6);
  std::vector<int32_t> idx(64);
  auto gn = [&](int groups) {
    GroupNormArgs a;
    a.x = view(x.data(), {2, 6, 4, 4});
    a.weight = view(g.data(), {6});
    a.bias = view(b.data(), {6});
    a.y = view(y.data(), {2, 6, 4, 4});
    a.groups = groups;
    return a;
  };
  CHECK_NOTHROW(be->group_norm(gn(3), s));
  CHECK_THROWS_WITH(be->group_norm(gn(4), s), Catch::Contains("kernel group_norm") &&
                                                  Catch::Contains("groups (4) must divide the channels (6)"));
  GroupNormArgs half = gn(3);
  half.bias = ConstTensorView{};
  CHECK_THROWS_WITH(be->group_norm(half, s), Catch::Contains("weight and bias must be given together"));

  auto conv = [&](int stride, int top, int bottom, std::initializer_list<int64_t> yshape) {
    Conv2dArgs a;
    a.x = view(x.data(), {2, 6, 4, 4});
    a.weight = view(w.data(), {6, 6, 3, 3});
    a.y = make_view<void*>(y.data(), DType::f32, yshape);
    a.stride = stride;
    a.pad_top = top;
    a.pad_bottom = bottom;
    a.pad_left = top;
    a.pad_right = bottom;
    return a;
  };
  CHECK_NOTHROW(be->conv2d(conv(2, 0, 1, {2, 6, 2, 2}), s));
  CHECK_THROWS_WITH(be->conv2d(conv(2, 0, 1, {2, 6, 3, 3}), s),
                    Catch::Contains("kernel conv2d") && Catch::Contains("'y' has shape [2, 6, 3, 3], expected [2, 6, 2, 2]"));
  CHECK_THROWS_WITH(be->conv2d(conv(0, 0, 1, {2, 6, 2, 2}), s), Catch::Contains("stride must be >= 1"));
  CHECK_THROWS_WITH(be->conv2d(conv(1, -1, 1, {2, 6, 2, 2}), s), Catch::Contains("padding must be non-negative"));
  Conv2dArgs wrong_in = conv(1, 1, 1, {2, 6, 4, 4});
  wrong_in.weight = view(w.data(), {6, 5, 3, 3});
  CHECK_THROWS_WITH(be->conv2d(wrong_in, s), Catch::Contains("has 5 input channels"));

  VqNearestArgs q;
  q.z = view(x.data(), {2, 6, 4, 4});
  q.codebook = view(w.data(), {10, 5});
  q.indices = view(idx.data(), {2, 4, 4});
  CHECK_THROWS_WITH(be->vq_nearest(q, s), Catch::Contains("kernel vq_nearest") && Catch::Contains("vectors of 5"));
  q.codebook = view(w.data(), {10, 6});
  CHECK_NOTHROW(be->vq_nearest(q, s));
  q.indices = make_view<void*>(y.data(), DType::f32, {2, 4, 4});
  CHECK_THROWS_WITH(be->vq_nearest(q, s), Catch::Contains("'indices' has dtype f32"));

  CHECK_THROWS_WITH(
      be->upsample_nearest2x(UpsampleNearest2xArgs{view(x.data(), {2, 6, 4, 4}), view(y.data(), {2, 6, 8, 7})}, s),
      Catch::Contains("'y' has shape [2, 6, 8, 7], expected [2, 6, 8, 8]"));
}

TEST_CASE("which backends have the VQGAN kernels", "[vision][kernels]") {
  CHECK(create_backend("cpu")->capabilities().vqgan_kernels);
  CHECK(create_backend("cpu-reference")->capabilities().vqgan_kernels);
  CHECK(create_backend("sim-gpu")->capabilities().vqgan_kernels);
  for (const std::string& name : available_backend_names())
    if (name.rfind("cuda", 0) == 0 || name.rfind("hip", 0) == 0) {  // cuda, hip, cuda-emu, hip-emu: vision.cu
      INFO(name);
      CHECK(create_backend(name)->capabilities().vqgan_kernels);
    }
}
