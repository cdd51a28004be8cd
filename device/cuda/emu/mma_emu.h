// mma_emu.h: the matrix-core tile product of mma.h under the SIMT emulation. Every lane of the
// warp passes its fragments; the emulation gathers them, rebuilds the whole A, B and C tiles
// from the vendors' documented fragment layouts (written out in simt_emu.cpp from the PTX ISA's
// tables for mma.m16n8k16 at warp size 32, and from AMD's matrix instruction calculator for
// v_mfma_f32_16x16x16bf16_1k at warp size 64), computes D = A B + C in fp32 (k ascending), and
// hands each lane its part of D by the same tables.
#pragma once
#include <cstdint>

namespace rw::simt::emu {

// d: this lane's C fragment in, D fragment out (4 fp32); a, b: its A and B fragments (bf16 bits:
// 8 and 4 at warp size 32, 4 and 4 at 64). Every lane of the warp must call it.
void mma_bf16(float* d, const uint16_t* a, const uint16_t* b, int warp_size);

}  // namespace rw::simt::emu
