// registry.cpp: the table of backends. A new backend adds one entry here (cuda and hip under
// their CMake options); nothing else maps names to implementations.
#include <string>

#include "device/backend.h"
#include "device/cpu/blas_kernel_select.h"
#include "device/cpu/cpu_backend.h"
#include "device/sim/sim_gpu_backend.h"
#if RINGWORLD_HAVE_CUDA || RINGWORLD_HAVE_HIP
#include "device/cuda/gpu_backend.h"
#endif
#if RINGWORLD_HAVE_GPU_EMU
#include "device/cuda/emu/emu_backend.h"
#endif
#include "src/common/input_error.h"

namespace rw::device {
namespace {

bool always() { return true; }

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

const std::vector<BackendInfo>& backend_registry() {
  static const std::vector<BackendInfo> registry = {
      {"cpu", "CPU: OpenBLAS sgemm, OpenMP, AVX-512 attention where the CPU has it; host memory",
       [] { return std::unique_ptr<Backend>(std::make_unique<CpuBackend>()); }, &always, true},
      {"cpu-reference", "CPU with attention by plain loops in fp64 (slow; for checking)",
       [] { return std::unique_ptr<Backend>(std::make_unique<CpuReferenceBackend>()); }, &always, true},
      {"sim-gpu",
       "a CPU backend that behaves like a discrete GPU: memory the host cannot touch, kernels run later on "
       "one worker thread per stream (strict, slow; catches ordering and residency bugs)",
       [] { return std::unique_ptr<Backend>(std::make_unique<SimGpuBackend>()); }, &always, true},
#if RINGWORLD_HAVE_GPU_EMU
      {"cuda-emu",
       "the GPU kernels (device/cuda/) on the CPU under the SIMT emulation with warp size 32, behind "
       "sim-gpu's strict memory and streams (tests; very slow)",
       &make_cuda_emu_backend, &always, false},
      {"hip-emu", "the same with warp size 64 (AMD CDNA's wavefronts)", &make_hip_emu_backend, &always, false},
#endif
#if RINGWORLD_HAVE_CUDA
      {"cuda", "NVIDIA GPU: CUDA kernels, cuBLAS GEMMs (device/cuda/); one rank per GPU, chosen from the node-local rank",
       &make_cuda_backend, &cuda_backend_available, true, &cuda_backend_unavailable_reason},
#endif
#if RINGWORLD_HAVE_HIP
      {"hip", "AMD GPU: the CUDA kernels compiled as HIP (device/cuda/); one rank per GPU (GCD), chosen from the node-local rank",
       &make_hip_backend, &hip_backend_available, true, &hip_backend_unavailable_reason},
#endif
  };
  return registry;
}

const BackendInfo* find_backend(const std::string& name) {
  for (const BackendInfo& b : backend_registry())
    if (name == b.name) return &b;
  return nullptr;
}

std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const BackendInfo& b : backend_registry())
    if (b.tools && b.available()) names.push_back(b.name);
  return names;
}

std::vector<std::string> available_backend_names() {
  std::vector<std::string> names;
  for (const BackendInfo& b : backend_registry())
    if (b.available()) names.push_back(b.name);
  return names;
}

namespace {
std::vector<std::string> registered_names() {
  std::vector<std::string> names;
  for (const BackendInfo& b : backend_registry()) names.push_back(b.name);
  return names;
}
}  // namespace

std::unique_ptr<Backend> create_backend(const std::string& name) {
  const BackendInfo* b = find_backend(name);
  if (!b)
    throw InputError("unknown device backend '" + name + "' (registered: " + join(registered_names()) +
                     "; available here: " + join(available_backend_names()) + ")");
  if (!b->available())
    throw InputError("device backend '" + name + "' is registered but not available on this machine" +
                     (b->unavailable_reason ? ": " + b->unavailable_reason() : std::string()) +
                     " (available here: " + join(available_backend_names()) + ")");
  return b->create();
}

std::unique_ptr<Backend> make_backend(const std::string& name) {
  const BackendInfo* b = find_backend(name);
  if (!b)
    throw InputError("unknown device '" + name + "' (--device takes: " + join(backend_names()) +
                     "; registered: " + join(registered_names()) + ")");
  if (!b->tools)
    throw InputError("device '" + name +
                     "' is registered for the tests only: the tools do not take it (--device takes: " +
                     join(backend_names()) + ")");
  if (!b->available())
    throw InputError("device '" + name + "' is not available on this machine" +
                     (b->unavailable_reason ? ": " + b->unavailable_reason() : std::string()) +
                     " (--device takes: " + join(backend_names()) + ")");
  return b->create();
}

void prepare_process(int argc, char** argv) { cpu::select_blas_kernel(argc, argv); }

}  // namespace rw::device
