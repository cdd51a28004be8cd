// gpu_kernels.h: the GPU kernels' one entry point, per compilation (vendor.h's RW_GPU_NS: cuda,
// hip, emu_w32, emu_w64): runs any KernelCall whose arguments passed the contract's checks
// (kernel_checks.cpp) on device pointers, enqueued on ctx.stream (under the emulation: run now,
// on the calling thread). Included by the code compiled with a GPU toolchain (gpu_backend.cu);
// the emulated backend declares its two instances itself (emu/emu_backend.cpp).
#pragma once
#include "device/cuda/launch_context.h"
#include "device/kernel_call.h"

namespace rw::device::gpu::RW_GPU_NS {

void run_kernel(KernelCall& call, const LaunchContext& ctx);

}  // namespace rw::device::gpu::RW_GPU_NS
