// emu_backend.h: the GPU kernels of device/cuda/ run on the CPU under the SIMT emulation
// (simt_emu.h), behind sim-gpu's strict memory and streams (device/sim/): device memory the
// host cannot touch, one worker thread per stream, random delays, NaN-filled fresh memory and
// outputs, pinned buffers protected while a copy uses them. Only the kernels differ from
// sim-gpu: each kernel call runs the GPU launchers (gpu_kernels.h), their launches emulated
// block by block with fibers as threads, on the stream's worker.
//
//   cuda-emu  warp size 32 (NVIDIA's)
//   hip-emu   warp size 64 (CDNA's)
//
// Test backends: slow (every GPU thread a fiber), registered so the conformance test runs every
// GPU kernel against the fp64 reference with both warp sizes; not offered to the tools. The
// launchers' scratch (the workspace) is host memory per worker thread, NaN-filled at every
// request, so a kernel reading scratch it did not write shows NaN.
#pragma once
#include <memory>

#include "device/backend.h"

namespace rw::device {

std::unique_ptr<Backend> make_cuda_emu_backend();
std::unique_ptr<Backend> make_hip_emu_backend();

}  // namespace rw::device
