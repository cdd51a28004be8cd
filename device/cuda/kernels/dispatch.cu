// dispatch.cu: run_kernel (gpu_kernels.h): one std::visit over the contract's argument structs,
// to the launcher of each kernel family (common.cuh), the VQGAN kernels (vision.cu) included.
#include <variant>

#include "device/cuda/gpu_kernels.h"
#include "device/cuda/kernels/common.cuh"

namespace rw::device::gpu::RW_GPU_NS {

void run_kernel(KernelCall& call, const LaunchContext& ctx) {
  std::visit([&](auto& args) { run(args, ctx); }, call);
}

}  // namespace rw::device::gpu::RW_GPU_NS
