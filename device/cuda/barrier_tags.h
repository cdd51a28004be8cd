// barrier_tags.h: names of the kernels' block barriers that the SIMT emulation's test hook can
// drop (RW_SYNCTHREADS(tag) in simt.h; rw::simt::emu::drop_barrier_for_test), so a test shows
// that removing one gives a wrong answer. Vendor-neutral: tests include it without a GPU header.
#pragma once

namespace rw::device::gpu {

enum BarrierTag : int {
  kBarrierPlain = 0,             // not droppable
  kBarrierGemmTileLoaded = 1,    // kernels/gemm.cu: the A/B tiles are in shared memory
  kBarrierGemmTileConsumed = 2,  // kernels/gemm.cu: every thread is done with the tiles
  kBarrierReduceScratch = 3,     // simt.h block_sum: the warps' partial sums are in shared memory
  kBarrierAttnBwdTileLoaded = 4,  // kernels/attention_fused_bwd.cu: the streamed Q/dO or K/V tile is in shared memory
  kBarrierConvTileLoaded = 5,     // kernels/vision.cu conv2d: the input patch and weights are in shared memory
  kBarrierConvTileConsumed = 6,   // kernels/vision.cu conv2d: every thread is done with them
  kBarrierVqTileLoaded = 7,       // kernels/vision.cu vq_nearest: the codebook tile is in shared memory
};

}  // namespace rw::device::gpu
