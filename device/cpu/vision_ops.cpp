// vision_ops.cpp: see vision_ops.h.
#include "device/cpu/vision_ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "device/cpu/openblas_single_thread.h"
#include "device/vision_args.h"
#include "src/common/fatal.h"

namespace rw::device::cpu {

namespace {

// col[(ci * kh + a) * kw + b][r * wout + j] = x[ci, (row0 + r) * stride + a - pad_top,
// j * stride + b - pad_left], zero outside the image; x is one image [cin, h, w].
void im2col_rows(const float* x, float* col, const Conv2dShape& s, int64_t row0, int64_t rows) {
  const int64_t wout = s.out_width(), cols = rows * wout, kk = s.kernel_h * s.kernel_w;
  const int64_t n_rows = s.in_channels * kk;
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < n_rows; ++q) {
    const int64_t ci = q / kk, a = (q % kk) / s.kernel_w, b = q % s.kernel_w;
    const float* plane = x + ci * s.height * s.width;
    float* out = col + q * cols;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t in_row = (row0 + r) * s.stride + a - s.pad_top;
      float* dst = out + r * wout;
      if (in_row < 0 || in_row >= s.height) {
        std::fill(dst, dst + wout, 0.f);
        continue;
      }
      const float* src = plane + in_row * s.width;
      // Columns j whose input column j * stride + b - pad_left lies inside the row: [j0, j1).
      const int64_t shift = b - s.pad_left;
      const int64_t j0 = std::min<int64_t>(wout, shift >= 0 ? 0 : (-shift + s.stride - 1) / s.stride);
      const int64_t j1 = std::max<int64_t>(j0, std::min<int64_t>(wout, (s.width - shift + s.stride - 1) / s.stride));
      std::fill(dst, dst + j0, 0.f);
      if (s.stride == 1) {
        std::copy(src + j0 + shift, src + j1 + shift, dst + j0);
      } else {
        for (int64_t j = j0; j < j1; ++j) dst[j] = src[j * s.stride + shift];
      }
      std::fill(dst + j1, dst + wout, 0.f);
    }
  }
}

}  // namespace

void conv2d_forward(const float* x, const float* weight, const float* bias, float* y, const Conv2dShape& s) {
  const int64_t hout = s.out_height(), wout = s.out_width(), out_pixels = hout * wout;
  const int64_t k = s.in_channels * s.kernel_h * s.kernel_w;
  if (s.batch == 0 || s.out_channels == 0 || out_pixels == 0) return;
  const bool direct = s.kernel_h == 1 && s.kernel_w == 1 && s.stride == 1 && s.pad_top == 0 && s.pad_bottom == 0 &&
                      s.pad_left == 0 && s.pad_right == 0;
  const int64_t block_rows = std::clamp<int64_t>(kConvColumnFloats / std::max<int64_t>(k * wout, 1), 1, hout);
  thread_local std::vector<float> col;
  if (!direct && k > 0) col.resize(static_cast<std::size_t>(k * block_rows * wout));
  const int64_t m_tiles = (s.out_channels + kConvTileChannels - 1) / kConvTileChannels;
  OpenblasSingleThread single;  // every GEMM below on the OpenMP thread that calls it
  for (int64_t n = 0; n < s.batch; ++n) {
    const float* xn = x + n * s.in_channels * s.height * s.width;
    float* yn = y + n * s.out_channels * out_pixels;
    for (int64_t row0 = 0; row0 < hout; row0 += block_rows) {
      const int64_t rows = std::min(block_rows, hout - row0), cols = rows * wout;
      float* yb = yn + row0 * wout;  // Cout rows of `cols` values, row stride out_pixels
      const float* b = xn + row0 * wout;  // direct: x's rows are the columns (ld = H*W = out_pixels)
      int64_t ldb = out_pixels;
      if (!direct && k > 0) {
        im2col_rows(xn, col.data(), s, row0, rows);
        b = col.data();
        ldb = cols;
      }
      // Tiles of the block's output (kConvTileChannels x kConvTileColumns, fixed sizes): one
      // task each, bias preloaded, then C += W_tile * col_tile by a single-threaded sgemm.
      const int64_t n_tiles = (cols + kConvTileColumns - 1) / kConvTileColumns;
#pragma omp parallel for schedule(static)
      for (int64_t tile = 0; tile < m_tiles * n_tiles; ++tile) {
        const int64_t m0 = tile / n_tiles * kConvTileChannels, c0 = tile % n_tiles * kConvTileColumns;
        const int64_t m = std::min(kConvTileChannels, s.out_channels - m0), nc = std::min(kConvTileColumns, cols - c0);
        for (int64_t co = m0; co < m0 + m; ++co)
          std::fill(yb + co * out_pixels + c0, yb + co * out_pixels + c0 + nc, bias ? bias[co] : 0.f);
        if (k == 0) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(nc),
                    static_cast<int>(k), 1.f, weight + m0 * k, static_cast<int>(k), b + c0, static_cast<int>(ldb), 1.f,
                    yb + m0 * out_pixels + c0, static_cast<int>(out_pixels));
      }
    }
  }
}

void group_norm_forward(const float* x, const float* weight, const float* bias, float* y, int64_t batch,
                        int64_t channels, int64_t pixels, int64_t groups, double eps, bool silu) {
  const int64_t per_group = channels / groups, count = per_group * pixels;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t ng = 0; ng < batch * groups; ++ng) {
    const int64_t offset = ng * count, c0 = (ng % groups) * per_group;
    const float* xg = x + offset;
    double total = 0;
    for (int64_t i = 0; i < count; ++i) total += xg[i];
    const double mean = count ? total / static_cast<double>(count) : 0.0;
    double squares = 0;
    for (int64_t i = 0; i < count; ++i) {
      const double d = xg[i] - mean;
      squares += d * d;
    }
    const double inv = 1.0 / std::sqrt((count ? squares / static_cast<double>(count) : 0.0) + eps);
    float* yg = y + offset;
    for (int64_t c = 0; c < per_group; ++c) {
      const double scale = weight ? inv * weight[c0 + c] : inv, shift = bias ? bias[c0 + c] : 0.0;
      for (int64_t p = c * pixels; p < (c + 1) * pixels; ++p) {
        const float v = static_cast<float>((xg[p] - mean) * scale + shift);
        yg[p] = silu ? v / (1.f + std::exp(-v)) : v;
      }
    }
  }
}

void silu_forward(const float* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.f + std::exp(-x[i]));
}

void upsample_nearest2x(const float* x, float* y, int64_t planes, int64_t h, int64_t w) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < 2 * h; ++i) {
      const float* src = x + (p * h + i / 2) * w;
      float* dst = y + (p * 2 * h + i) * 2 * w;
      for (int64_t j = 0; j < 2 * w; ++j) dst[j] = src[j / 2];
    }
}

void vq_nearest(const float* z, const float* codebook, int32_t* indices, float* quantized, int64_t batch,
                int64_t dim, int64_t pixels, int64_t codes) {
#pragma omp parallel
  {
    std::vector<double> v(static_cast<std::size_t>(dim));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < batch * pixels; ++t) {
      const int64_t n = t / pixels, p = t % pixels;
      const float* zn = z + n * dim * pixels + p;
      for (int64_t d = 0; d < dim; ++d) v[d] = zn[d * pixels];
      int64_t best = 0;
      double best_distance = 0;
      for (int64_t k = 0; k < codes; ++k) {
        const float* e = codebook + k * dim;
        double distance = 0;
        for (int64_t d = 0; d < dim; ++d) {
          const double diff = v[d] - e[d];
          distance += diff * diff;
        }
        if (k == 0 || distance < best_distance) best = k, best_distance = distance;  // strict: ties keep the lowest
      }
      indices[t] = static_cast<int32_t>(best);
      if (quantized) {
        float* qn = quantized + n * dim * pixels + p;
        for (int64_t d = 0; d < dim; ++d) qn[d * pixels] = codebook[best * dim + d];
      }
    }
  }
}

void vq_lookup(const int32_t* indices, const float* codebook, float* out, int64_t batch, int64_t dim,
               int64_t pixels, int64_t codes) {
  for (int64_t t = 0; t < batch * pixels; ++t)
    RW_CHECK(indices[t] >= 0 && indices[t] < codes, vq_lookup_bad_code_message(indices[t], t, codes));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < batch * pixels; ++t) {
    const int64_t n = t / pixels, p = t % pixels;
    const float* e = codebook + static_cast<int64_t>(indices[t]) * dim;
    float* on = out + n * dim * pixels + p;
    for (int64_t d = 0; d < dim; ++d) on[d * pixels] = e[d];
  }
}

}  // namespace rw::device::cpu
