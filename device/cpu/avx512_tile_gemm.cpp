// avx512_tile_gemm.cpp: AVX-512 register tiles of the fused attention forward.
//
// Every function that uses AVX-512 carries RW_AVX512 (a target attribute) instead of relying on
// -march: the file is safe to link into a build for any x86-64 CPU, and these functions run
// only after avx512_available() said yes. Helpers are internal (anonymous namespace) and use no
// standard-library templates, so no AVX-512 copy of a shared inline function can reach the
// rest of the program through the linker.
//
// Tiles: scores are kRowPanel x (2 * kKeyPanel) = 8 x 32 (16 accumulators, 2 key loads and 8
// broadcasts per head_dim step); P V is kRowPanel x 32 output columns per pass over the keys.
// Sixteen independent accumulators cover the 4-cycle FMA latency on two FMA ports twice over.
#include "device/cpu/avx512_tile_gemm.h"

#include "device/cpu/fused_tiles.h"
#include "src/common/fatal.h"

// GCC 12's AVX-512 headers seed unmasked intrinsics with a self-initialised "undefined" vector,
// which -Wuninitialized reports once they are inlined (a false positive): silenced for them only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized (and warns of the unknown group)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#define RW_AVX512 __attribute__((target("avx512f,fma")))
// Loops over a register tile's rows and vectors are unrolled before GCC decides what lives in
// registers; otherwise it keeps the accumulator arrays on the stack.
#define RW_UNROLL _Pragma("GCC unroll 16")

namespace rw::device::cpu::avx512 {
namespace {

constexpr int V = kKeyPanel;  // floats per vector

// Scores for R rows x (NV * V) keys; max_v[r * V + i] = max(itself, row r's scores of lane i).
// Not inlined, and max_v in memory: that keeps the k loop's registers to the 16 accumulators,
// the key vectors and one broadcast (GCC spilled a key vector when the maxima stayed live).
template <int R, int NV>
RW_AVX512 __attribute__((noinline)) void qk_block(const float* q_panel, const float* k_panels, int head_dim,
                                                  float scale, float* s, int ld_s, float* max_v) {
  __m512 acc[R][NV];
  RW_UNROLL for (int r = 0; r < R; ++r) RW_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const int panel_floats = head_dim * V;
  for (int p = 0; p < head_dim; ++p) {
    __m512 k[NV];
    RW_UNROLL for (int v = 0; v < NV; ++v) k[v] = _mm512_load_ps(k_panels + v * panel_floats + p * V);
    const float* q = q_panel + p * R;
    RW_UNROLL for (int r = 0; r < R; ++r) {
      const __m512 qr = _mm512_set1_ps(q[r]);
      RW_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(qr, k[v], acc[r][v]);
    }
  }
  const __m512 scale_v = _mm512_set1_ps(scale);
  RW_UNROLL for (int r = 0; r < R; ++r) RW_UNROLL for (int v = 0; v < NV; ++v) {
    const __m512 sv = _mm512_mul_ps(acc[r][v], scale_v);
    _mm512_storeu_ps(s + r * ld_s + v * V, sv);
    _mm512_store_ps(max_v + r * V, _mm512_max_ps(_mm512_load_ps(max_v + r * V), sv));
  }
}

// acc[R rows, NV * V columns from c0] += p[R rows, keys j_begin..j_end) v[those keys, columns].
template <int R, int NV>
RW_AVX512 inline void pv_block(const float* p, int ld_p, const float* v, int head_dim, int j_begin,
                               int j_end, float* acc, int c0) {
  __m512 sum[R][NV];
  RW_UNROLL for (int r = 0; r < R; ++r) RW_UNROLL for (int x = 0; x < NV; ++x)
    sum[r][x] = _mm512_loadu_ps(acc + r * head_dim + c0 + x * V);
  for (int j = j_begin; j < j_end; ++j) {
    __m512 vj[NV];
    RW_UNROLL for (int x = 0; x < NV; ++x) vj[x] = _mm512_loadu_ps(v + j * head_dim + c0 + x * V);
    RW_UNROLL for (int r = 0; r < R; ++r) {
      const __m512 pr = _mm512_set1_ps(p[r * ld_p + j]);
      RW_UNROLL for (int x = 0; x < NV; ++x) sum[r][x] = _mm512_fmadd_ps(pr, vj[x], sum[r][x]);
    }
  }
  RW_UNROLL for (int r = 0; r < R; ++r) RW_UNROLL for (int x = 0; x < NV; ++x)
    _mm512_storeu_ps(acc + r * head_dim + c0 + x * V, sum[r][x]);
}

// exp(x) as exp_fast (fast_exp.h): n = round(x / ln2), r = x - n ln2 (Cody-Waite), degree-7
// Taylor polynomial of exp(r), times 2^n by vscalefps. x < -87 (also -inf) gives exactly 0: those
// lanes are masked out at the end, whatever the (possibly NaN) arithmetic before; NaN stays NaN.
// n is rounded by adding and subtracting 1.5 * 2^23 (exact for |x / ln2| < 2^22).
RW_AVX512 inline __m512 exp_vec(__m512 x) {
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.f), _CMP_NLT_UQ);  // x >= -87 or NaN
  const __m512 round_shift = _mm512_set1_ps(12582912.f);  // 1.5 * 2^23
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), round_shift), round_shift);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723e-6f), r);
  __m512 poly = _mm512_set1_ps(1.f / 5040.f);
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.f / 720.f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.f / 120.f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.f / 24.f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.f / 6.f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(0.5f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.f));
  poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.f));
  return _mm512_maskz_scalef_ps(keep, poly, n);
}

RW_AVX512 inline __mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }

}  // namespace

bool avx512_available() {
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return available;
}

RW_AVX512 void qk_tile(const float* q_panel, const float* k_panels, int n_key_panels, int head_dim,
                       float scale, float* s, int ld_s, float* row_max) {
  alignas(64) float max_v[kRowPanel * V];
  for (int r = 0; r < kRowPanel; ++r) _mm512_store_ps(max_v + r * V, _mm512_set1_ps(-__builtin_inff()));
  int t = 0;
  for (; t + 2 <= n_key_panels; t += 2)
    qk_block<kRowPanel, 2>(q_panel, k_panels + t * head_dim * V, head_dim, scale, s + t * V, ld_s, max_v);
  if (t < n_key_panels)
    qk_block<kRowPanel, 1>(q_panel, k_panels + t * head_dim * V, head_dim, scale, s + t * V, ld_s, max_v);
  for (int r = 0; r < kRowPanel; ++r) row_max[r] = _mm512_reduce_max_ps(_mm512_load_ps(max_v + r * V));
}

RW_AVX512 void pv_tile(const float* p, int ld_p, const float* v, int head_dim, int j_begin, int j_end,
                       float* acc) {
  int c0 = 0;
  for (; c0 + 2 * V <= head_dim; c0 += 2 * V) pv_block<kRowPanel, 2>(p, ld_p, v, head_dim, j_begin, j_end, acc, c0);
  if (c0 < head_dim) pv_block<kRowPanel, 1>(p, ld_p, v, head_dim, j_begin, j_end, acc, c0);
}

RW_AVX512 float row_max(const float* x, int n) {
  __m512 m = _mm512_set1_ps(-__builtin_inff());
  int i = 0;
  for (; i + V <= n; i += V) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) m = _mm512_mask_max_ps(m, tail_mask(n - i), m, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
  return _mm512_reduce_max_ps(m);
}

RW_AVX512 float exp_shift_sum(float* x, int n, float shift) {
  const __m512 shift_v = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  int i = 0;
  for (; i + V <= n; i += V) {
    const __m512 e = exp_vec(_mm512_sub_ps(_mm512_loadu_ps(x + i), shift_v));
    _mm512_storeu_ps(x + i, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = exp_vec(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), shift_v));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

}  // namespace rw::device::cpu::avx512

namespace rw::device::cpu {

const FusedTiles& avx512_fused_tiles() {
  RW_CHECK(avx512::avx512_available(), "the AVX-512 attention tiles were asked for on a CPU without AVX-512F");
  static const FusedTiles tiles{"avx512", avx512::qk_tile, avx512::pv_tile, avx512::row_max, avx512::exp_shift_sum};
  return tiles;
}

}  // namespace rw::device::cpu
