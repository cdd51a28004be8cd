// fused_tiles.h: the tile operations of the fused attention forward (attention_fwd_fused.cpp),
// one table per instruction set, chosen at run time:
//   avx512    register tiles in AVX-512 (avx512_tile_gemm.cpp); only where avx512_available()
//   portable  plain C++ loops in the build's baseline instructions (fused_tiles_portable.cpp):
//             any CPU. Slower; it lets the fused kernel's bookkeeping (panels, ragged blocks,
//             masks, merges) run and be tested on CPUs without AVX-512.
// Layouts and semantics of each operation: avx512_tile_gemm.h (both tables follow it exactly;
// results differ only by rounding: summation order and fused multiply-adds).
#pragma once
#include "device/cpu/avx512_tile_gemm.h"  // layouts and constants only (no intrinsics)

namespace rw::device::cpu {

struct FusedTiles {
  const char* name;
  void (*qk_tile)(const float* q_panel, const float* k_panels, int n_key_panels, int head_dim, float scale,
                  float* s, int ld_s, float* row_max);
  void (*pv_tile)(const float* p, int ld_p, const float* v, int head_dim, int j_begin, int j_end, float* acc);
  float (*row_max)(const float* x, int n);
  float (*exp_shift_sum)(float* x, int n, float shift);
};

// The AVX-512 table; fatal where avx512::avx512_available() is false.
const FusedTiles& avx512_fused_tiles();
// The portable table (any CPU).
const FusedTiles& portable_fused_tiles();

}  // namespace rw::device::cpu
