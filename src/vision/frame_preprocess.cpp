// frame_preprocess.cpp: see frame_preprocess.h.
#include "src/vision/frame_preprocess.h"

#include <algorithm>
#include <cmath>

#include "src/common/input_error.h"

namespace rw::vision {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double cubic(double x) {  // a = -0.5
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Taps {
  int64_t window = 0;               // taps per output pixel (the largest window)
  std::vector<int64_t> first, count;  // per output pixel: first input index and number of taps
  std::vector<int32_t> weights;     // fixed point, window per output pixel
};

// The coefficients of one axis: in_size -> out_size.
Taps taps(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = 2.0 * filter_scale;
  Taps t;
  t.window = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<std::size_t>(out_size));
  t.count.resize(static_cast<std::size_t>(out_size));
  t.weights.assign(static_cast<std::size_t>(out_size * t.window), 0);
  std::vector<double> k(static_cast<std::size_t>(t.window));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0;
    for (int64_t x = 0; x < xmax; ++x) {
      k[static_cast<std::size_t>(x)] = cubic((static_cast<double>(x + xmin) - center + 0.5) / filter_scale);
      total += k[static_cast<std::size_t>(x)];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      const double w = total != 0.0 ? k[static_cast<std::size_t>(x)] / total : k[static_cast<std::size_t>(x)];
      const double fixed = w * (1 << kPrecisionBits);
      t.weights[static_cast<std::size_t>(xx * t.window + x)] = static_cast<int32_t>(w < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    t.first[static_cast<std::size_t>(xx)] = xmin;
    t.count[static_cast<std::size_t>(xx)] = xmax;
  }
  return t;
}

uint8_t clip8(int64_t sum) {
  const int64_t v = sum >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace

std::vector<uint8_t> resize_bicubic_like_pil(const uint8_t* rgb, int64_t width, int64_t height, int64_t out_width,
                                             int64_t out_height) {
  if (width < 1 || height < 1 || out_width < 1 || out_height < 1) throw InputError("resize: empty image");
  std::vector<uint8_t> current(rgb, rgb + width * height * 3);
  int64_t w = width, h = height;
  const Taps th = taps(width, out_width), tv = taps(height, out_height);
  if (out_width != width) {
    // PIL resamples horizontally only the rows the vertical pass reads; the values are the same.
    std::vector<uint8_t> next(static_cast<std::size_t>(out_width * h * 3));
    for (int64_t y = 0; y < h; ++y)
      for (int64_t xx = 0; xx < out_width; ++xx) {
        const int64_t first = th.first[static_cast<std::size_t>(xx)], n = th.count[static_cast<std::size_t>(xx)];
        const int32_t* k = &th.weights[static_cast<std::size_t>(xx * th.window)];
        for (int c = 0; c < 3; ++c) {
          int64_t sum = int64_t(1) << (kPrecisionBits - 1);
          for (int64_t x = 0; x < n; ++x) sum += int64_t(current[static_cast<std::size_t>((y * w + first + x) * 3 + c)]) * k[x];
          next[static_cast<std::size_t>((y * out_width + xx) * 3 + c)] = clip8(sum);
        }
      }
    current.swap(next);
    w = out_width;
  }
  if (out_height != height) {
    std::vector<uint8_t> next(static_cast<std::size_t>(w * out_height * 3));
    for (int64_t yy = 0; yy < out_height; ++yy) {
      const int64_t first = tv.first[static_cast<std::size_t>(yy)], n = tv.count[static_cast<std::size_t>(yy)];
      const int32_t* k = &tv.weights[static_cast<std::size_t>(yy * tv.window)];
      for (int64_t x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) {
          int64_t sum = int64_t(1) << (kPrecisionBits - 1);
          for (int64_t y = 0; y < n; ++y) sum += int64_t(current[static_cast<std::size_t>(((first + y) * w + x) * 3 + c)]) * k[y];
          next[static_cast<std::size_t>((yy * w + x) * 3 + c)] = clip8(sum);
        }
    }
    current.swap(next);
    h = out_height;
  }
  return current;
}

std::vector<float> lwm_frame(const uint8_t* rgb, int64_t width, int64_t height, int64_t size) {
  int64_t new_width, new_height;
  if (width < height) {
    new_width = size;
    new_height = static_cast<int64_t>(static_cast<double>(size) * static_cast<double>(height) / static_cast<double>(width));
  } else {
    new_height = size;
    new_width = static_cast<int64_t>(static_cast<double>(size) * static_cast<double>(width) / static_cast<double>(height));
  }
  const std::vector<uint8_t> resized = (new_width == width && new_height == height)
                                           ? std::vector<uint8_t>(rgb, rgb + width * height * 3)
                                           : resize_bicubic_like_pil(rgb, width, height, new_width, new_height);
  // PIL's crop: the box (new - size) / 2 .. (new + size) / 2, each corner rounded half to even.
  const int64_t left = static_cast<int64_t>(std::nearbyint(static_cast<double>(new_width - size) / 2));
  const int64_t top = static_cast<int64_t>(std::nearbyint(static_cast<double>(new_height - size) / 2));
  std::vector<float> frame(static_cast<std::size_t>(3 * size * size));
  for (int c = 0; c < 3; ++c)
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        const uint8_t v = resized[static_cast<std::size_t>(((top + y) * new_width + left + x) * 3 + c)];
        frame[static_cast<std::size_t>((c * size + y) * size + x)] = static_cast<float>(v) / 127.5f - 1.0f;
      }
  return frame;
}

std::vector<uint8_t> frame_to_rgb(const float* frame, int64_t size) {
  std::vector<uint8_t> rgb(static_cast<std::size_t>(3 * size * size));
  for (int c = 0; c < 3; ++c)
    for (int64_t i = 0; i < size * size; ++i) {
      float x = frame[c * size * size + i];
      x = std::isnan(x) ? 0.0f : std::min(1.0f, std::max(-1.0f, x));
      rgb[static_cast<std::size_t>(i * 3 + c)] = static_cast<uint8_t>(std::lround((x + 1.0f) * 127.5f));
    }
  return rgb;
}

}  // namespace rw::vision
