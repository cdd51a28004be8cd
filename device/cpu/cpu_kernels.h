// cpu_kernels.h: the CPU kernels behind one entry point: runs any KernelCall on host memory, on
// the calling thread, now. Used by the cpu and cpu-reference backends (work runs at
// submission) and by sim-gpu (on its stream workers, after translating device pointers).
//
// bf16 storage is handled here once for every kernel: bf16 arguments are converted into fp32
// temporaries (read and read-write ones), the fp32 kernel runs, and bf16 outputs are rounded
// back (write and read-write ones). So bf16 means "fp32 arithmetic, bf16 storage", as on a GPU.
#pragma once
#include "device/cpu/cpu_backend.h"
#include "device/kernel_call.h"

namespace rw::device::cpu {

struct KernelConfig {
  FwdKernel fwd_kernel = FwdKernel::automatic;  // the fast attention forward to use
  bool reference_attention = false;             // attention by plain loops in fp64 (cpu-reference)
};

// Runs the call; its arguments have passed check_kernel_call. The hook is called between tiles
// of the attention kernels.
void run_kernel(KernelCall& call, const ProgressHook& hook, const KernelConfig& config);

// Elementwise fp32 <-> bf16 conversion of n contiguous elements (round to nearest even).
void convert_to_bf16(const float* x, bf16_t* y, int64_t n);
void convert_from_bf16(const bf16_t* x, float* y, int64_t n);

}  // namespace rw::device::cpu
