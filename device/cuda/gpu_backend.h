// gpu_backend.h: the real GPU backends' factories, in vendor-neutral types (no CUDA/HIP header),
// for the registry. Each pair is defined by gpu_backend.cu compiled for that vendor (CUDA with
// -DRINGWORLD_CUDA=ON, HIP with -DRINGWORLD_HIP=ON); the registry lists only what was built.
//
// The backend (gpu_backend.cu) maps the contract one to one onto the runtime: streams are
// non-blocking cudaStream_t, events cudaEvent_t without timing, device memory cudaMalloc, pinned
// cudaMallocHost, copies cudaMemcpyAsync (cudaMemcpyDefault), kernels gpu_kernels.h on the
// stream with that stream's workspace; GEMM through cuBLAS (CUDA) or the own tiled kernel (HIP
// without hipBLAS). Environment: RINGWORLD_GPU_DEVICE (device index, default 0; phase B chooses
// it from the node-local rank) and RINGWORLD_GPU_TF32=1 (fp32 GEMMs on TF32 tensor cores:
// faster, outside the contract's fp32 tolerances, so off by default).
#pragma once
#include <memory>
#include <string>

#include "device/backend.h"

namespace rw::device {

#if RINGWORLD_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend();
bool cuda_backend_available();
// Why not (one line, e.g. "cudaGetDeviceCount: cudaErrorInsufficientDriver (...)"); empty when available.
std::string cuda_backend_unavailable_reason();
#endif

#if RINGWORLD_HAVE_HIP
std::unique_ptr<Backend> make_hip_backend();
bool hip_backend_available();
std::string hip_backend_unavailable_reason();
#endif

}  // namespace rw::device
