// emu_backend.cpp: see emu_backend.h.
#include "device/cuda/emu/emu_backend.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "device/cuda/launch_context.h"
#include "device/sim/sim_gpu_backend.h"
#include "src/common/fatal.h"

// The two emulated compilations of the kernels (device/cuda/gpu.cmake builds each kernel file
// once per warp size, in these namespaces).
namespace rw::device::gpu::emu_w32 {
void run_kernel(KernelCall& call, const LaunchContext& ctx);
}
namespace rw::device::gpu::emu_w64 {
void run_kernel(KernelCall& call, const LaunchContext& ctx);
}

namespace rw::device {
namespace {

// Host scratch of the stream worker that runs the kernel, NaN-filled at every request.
class HostWorkspace final : public gpu::Workspace {
 public:
  ~HostWorkspace() override { std::free(data_); }
  void* get(std::size_t n_bytes) override {
    if (n_bytes > capacity_) {
      std::free(data_);
      capacity_ = (n_bytes + 255) / 256 * 256;
      data_ = std::aligned_alloc(256, capacity_);
      RW_CHECK(data_ != nullptr,
               "SIMT emulation: out of memory for a workspace of " + std::to_string(n_bytes) + " bytes");
    }
    sim::fill_poison(data_, n_bytes);
    return data_;
  }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

thread_local HostWorkspace tl_workspace;

using Runner = void (*)(KernelCall&, const gpu::LaunchContext&);

std::unique_ptr<Backend> make_emulated(const char* name, int warp_size, Runner runner) {
  SimGpuOptions options = SimGpuOptions::from_environment();
  options.name = name;
  options.kernels_description = "the GPU kernels (device/cuda/) under the SIMT emulation, warp size " +
                                std::to_string(warp_size) + ", GEMM by the own tiled kernel, one block at a time";
  const bool attn_fused = gpu::attn_fused_from_environment();
  const bool attn_bwd_fused = gpu::attn_bwd_fused_from_environment();
  options.run_kernel = [runner, attn_fused, attn_bwd_fused](KernelCall& call) {
    gpu::LaunchContext ctx;
    ctx.workspace = &tl_workspace;
    ctx.attn_fused = attn_fused;
    ctx.attn_bwd_fused = attn_bwd_fused;
    runner(call, ctx);
  };
  return std::make_unique<SimGpuBackend>(options);
}

}  // namespace

std::unique_ptr<Backend> make_cuda_emu_backend() { return make_emulated("cuda-emu", 32, &gpu::emu_w32::run_kernel); }

std::unique_ptr<Backend> make_hip_emu_backend() { return make_emulated("hip-emu", 64, &gpu::emu_w64::run_kernel); }

}  // namespace rw::device
