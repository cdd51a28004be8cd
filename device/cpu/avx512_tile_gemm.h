// avx512_tile_gemm.h: the register-blocked AVX-512 pieces of the fused CPU attention forward
// (attention_fwd_fused.cpp): the two tile products and the softmax row pass.
//
// Compiled for AVX-512 by function attribute (not by build flags), so callers must check
// avx512_available() first; everything else in the program keeps the build's target.
//
// Packed layouts (all fp32, 64-byte aligned, written by the caller):
//   query panel  [head_dim][kRowPanel]            kRowPanel query rows, one after the other per
//                                                 head_dim index (rows past the block are zero)
//   key panel    [head_dim][kKeyPanel]            K^T for kKeyPanel keys (keys past the block
//                                                 zero); a block's panels lie back to back
//   values       [keys][head_dim]                 V rows of one key block, contiguous
// head_dim must be a multiple of kKeyPanel (16, one AVX-512 vector).
#pragma once

namespace rw::device::cpu::avx512 {

constexpr int kRowPanel = 8;   // query rows per register tile (8 x 32 scores: 16 accumulators)
constexpr int kKeyPanel = 16;  // keys per packed K^T panel (one vector of scores per row)

// True when this CPU (and OS) runs AVX-512F code.
bool avx512_available();

// s[r * ld_s + c] = scale * dot(query row r, key c) for the kRowPanel rows and the
// n_key_panels * kKeyPanel keys of the panels starting at k_panels; row_max[r] = the largest
// s[r * ld_s + c] written (zero keys past a block's end included: mask-free callers only).
void qk_tile(const float* q_panel, const float* k_panels, int n_key_panels, int head_dim,
             float scale, float* s, int ld_s, float* row_max);

// acc[r * head_dim + c] += sum over keys j in [j_begin, j_end) of p[r * ld_p + j] * v[j * head_dim + c]
// for the kRowPanel rows and all head_dim columns.
void pv_tile(const float* p, int ld_p, const float* v, int head_dim, int j_begin, int j_end,
             float* acc);

// max of x[0..n), -inf for n == 0.
float row_max(const float* x, int n);

// x[i] = exp(x[i] - shift) for i in [0, n) (exp as exp_fast in fast_exp.h); returns their sum.
float exp_shift_sum(float* x, int n, float shift);

}  // namespace rw::device::cpu::avx512
