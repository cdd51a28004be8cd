// fused_tiles_portable.cpp: the fused forward's tile operations in plain C++ (fused_tiles.h),
// compiled for the build's baseline; same layouts and results (up to rounding) as the AVX-512
// register tiles of avx512_tile_gemm.cpp.
#include <algorithm>
#include <limits>

#include "device/cpu/fast_exp.h"
#include "device/cpu/fused_tiles.h"

namespace rw::device::cpu {
namespace {

using avx512::kKeyPanel;
using avx512::kRowPanel;

void qk_tile(const float* q_panel, const float* k_panels, int n_key_panels, int head_dim, float scale, float* s,
             int ld_s, float* row_max) {
  for (int r = 0; r < kRowPanel; ++r) row_max[r] = -std::numeric_limits<float>::infinity();
  for (int t = 0; t < n_key_panels; ++t) {
    const float* panel = k_panels + static_cast<std::size_t>(t) * head_dim * kKeyPanel;
    for (int r = 0; r < kRowPanel; ++r) {
      float acc[kKeyPanel] = {};
      for (int p = 0; p < head_dim; ++p) {
        const float q = q_panel[p * kRowPanel + r];
#pragma omp simd
        for (int j = 0; j < kKeyPanel; ++j) acc[j] += q * panel[p * kKeyPanel + j];
      }
      float* srow = s + static_cast<std::size_t>(r) * ld_s + t * kKeyPanel;
      for (int j = 0; j < kKeyPanel; ++j) {
        srow[j] = scale * acc[j];
        row_max[r] = std::max(row_max[r], srow[j]);
      }
    }
  }
}

void pv_tile(const float* p, int ld_p, const float* v, int head_dim, int j_begin, int j_end, float* acc) {
  for (int r = 0; r < kRowPanel; ++r) {
    float* arow = acc + static_cast<std::size_t>(r) * head_dim;
    for (int j = j_begin; j < j_end; ++j) {
      const float pr = p[static_cast<std::size_t>(r) * ld_p + j];
      const float* vrow = v + static_cast<std::size_t>(j) * head_dim;
#pragma omp simd
      for (int c = 0; c < head_dim; ++c) arow[c] += pr * vrow[c];
    }
  }
}

}  // namespace

const FusedTiles& portable_fused_tiles() {
  static const FusedTiles tiles{"portable", qk_tile, pv_tile, max_of, exp_shift_sum};
  return tiles;
}

}  // namespace rw::device::cpu
