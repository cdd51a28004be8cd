// mma.h: the matrix-core tile operation behind one wrapper, for the fused attention kernels:
// one warp computes D = A B + C for a bf16 A (M x K) and B (K x N) with fp32 accumulation, each
// lane holding a fixed part of every tile in registers (its fragment).
//
//   NVIDIA (warp 32)   mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32   M 16, N 8,  K 16
//                      (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type")
//   AMD CDNA (warp 64) v_mfma_f32_16x16x16bf16_1k (gfx90a, gfx94x)            M 16, N 16, K 16
//                      (AMD's matrix instruction calculator; the CDNA ISA guides)
//   SIMT emulation     the same tiles and fragments as the vendor of its warp size; the product
//                      is computed by emu/mma_emu.h from those documented layouts, written out
//                      on their own (not from the accessors below), so a kernel that loads or
//                      reads fragments against the documentation gives a wrong answer here.
//
// Kernels place data in fragments only through the accessors (a_row/a_col, b_row/b_col,
// c_row/c_col: where element i of a lane's fragment sits in the tile) and never assume a layout
// themselves; what differs between vendors stays in this file. Row statistics of C (the online
// softmax) use c_row_lanes(): the lanes that share a row of C are the lane ^ m for m <
// c_row_lanes() (4 on NVIDIA, 16 on AMD), and c_row_slot(i) groups a lane's registers by row.
#pragma once
#include <cstdint>

#include "device/cuda/simt.h"

#if defined(RW_SIMT_EMU)
#include "device/cuda/emu/mma_emu.h"
#endif

namespace rw::device::gpu::RW_GPU_NS {

struct MmaTile {
  static constexpr int M = 16, K = 16, N = warp_size() == 32 ? 8 : 16;
  static constexpr int kA = M * K / warp_size();  // elements per lane: 8 (NVIDIA) or 4 (AMD)
  static constexpr int kB = K * N / warp_size();  // 4 and 4
  static constexpr int kC = M * N / warp_size();  // 4 and 4
  struct A {
    bf16_t x[kA];
  };
  struct B {
    bf16_t x[kB];
  };
  struct C {
    float x[kC];
  };

#if (defined(RW_SIMT_EMU) && RW_SIMT_EMU_WARP == 32) || defined(RW_GPU_CUDA)
  // NVIDIA m16n8k16: g = lane / 4 (group), t = lane % 4 (thread in group).
  __device__ static __forceinline__ int a_row(int lane, int i) { return (lane >> 2) + 8 * ((i >> 1) & 1); }
  __device__ static __forceinline__ int a_col(int lane, int i) { return 2 * (lane & 3) + (i & 1) + 8 * (i >> 2); }
  __device__ static __forceinline__ int b_row(int lane, int i) { return 2 * (lane & 3) + (i & 1) + 8 * (i >> 1); }
  __device__ static __forceinline__ int b_col(int lane, int i) { return lane >> 2; }
  __device__ static __forceinline__ int c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
  __device__ static __forceinline__ int c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }
  RW_HD static constexpr int c_row_lanes() { return 4; }
  RW_HD static constexpr int c_row_slots() { return 2; }
  __device__ static __forceinline__ int c_row_slot(int i) { return i >> 1; }
#else
  // AMD 16x16x16: lanes 16 q + r hold row (A) / column (B, C) r, the k (or C row) block 4 q.
  __device__ static __forceinline__ int a_row(int lane, int i) { return lane & 15; }
  __device__ static __forceinline__ int a_col(int lane, int i) { return 4 * (lane >> 4) + i; }
  __device__ static __forceinline__ int b_row(int lane, int i) { return 4 * (lane >> 4) + i; }
  __device__ static __forceinline__ int b_col(int lane, int i) { return lane & 15; }
  __device__ static __forceinline__ int c_row(int lane, int i) { return 4 * (lane >> 4) + i; }
  __device__ static __forceinline__ int c_col(int lane, int i) { return lane & 15; }
  RW_HD static constexpr int c_row_lanes() { return 16; }
  RW_HD static constexpr int c_row_slots() { return 4; }
  __device__ static __forceinline__ int c_row_slot(int i) { return i; }
#endif

  // d += a b over the warp (every lane must call it, with its own fragments).
  __device__ static __forceinline__ void mma(C& d, const A& a, const B& b) {
#if defined(RW_SIMT_EMU)
    ::rw::simt::emu::mma_bf16(d.x, reinterpret_cast<const uint16_t*>(a.x), reinterpret_cast<const uint16_t*>(b.x),
                              warp_size());
#elif defined(RW_GPU_CUDA)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    uint32_t ra[4], rb[2];
    for (int r = 0; r < 4; ++r) ra[r] = uint32_t(a.x[2 * r].bits) | (uint32_t(a.x[2 * r + 1].bits) << 16);
    for (int r = 0; r < 2; ++r) rb[r] = uint32_t(b.x[2 * r].bits) | (uint32_t(b.x[2 * r + 1].bits) << 16);
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d.x[0]), "+f"(d.x[1]), "+f"(d.x[2]), "+f"(d.x[3])
        : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
#elif defined(__CUDA_ARCH__)
    __trap();  // bf16 mma.sync needs sm_80 or newer
#endif
#else  // HIP
#if defined(__gfx90a__) || defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__)
    typedef short short4_t __attribute__((ext_vector_type(4)));
    typedef float float4_t __attribute__((ext_vector_type(4)));
    short4_t va, vb;
    float4_t vc;
    for (int i = 0; i < 4; ++i) {
      va[i] = static_cast<short>(a.x[i].bits);
      vb[i] = static_cast<short>(b.x[i].bits);
      vc[i] = d.x[i];
    }
    vc = __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(va, vb, vc, 0, 0, 0);
    for (int i = 0; i < 4; ++i) d.x[i] = vc[i];
#elif defined(__HIP_DEVICE_COMPILE__)
    __builtin_trap();  // the bf16 MFMA with 16x16x16 needs gfx90a or newer
#endif
#endif
  }
};

}  // namespace rw::device::gpu::RW_GPU_NS
