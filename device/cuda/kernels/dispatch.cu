// dispatch.cu: run_kernel (gpu_kernels.h): one std::visit over the contract's argument structs,
// to the launcher of each kernel family (common.cuh).
#include <string>
#include <type_traits>
#include <variant>

#include "device/cuda/gpu_kernels.h"
#include "device/cuda/kernels/common.cuh"
#include "src/common/fatal.h"

namespace rw::device::gpu::RW_GPU_NS {

void run_kernel(KernelCall& call, const LaunchContext& ctx) {
  std::visit(
      [&](auto& args) {
        using A = std::decay_t<decltype(args)>;
        if constexpr (is_vqgan_kernel_v<A>)  // no GPU versions yet (Capabilities::vqgan_kernels is false)
          RW_FAIL(std::string("kernel ") + A::kName + ": the GPU backends have no VQGAN kernels yet (cpu and sim-gpu do)");
        else
          run(args, ctx);
      },
      call);
}

}  // namespace rw::device::gpu::RW_GPU_NS
