// vendor.h: the one header that knows which GPU toolchain compiles the kernels. The kernels and
// the backend are written once in CUDA C++ (device/cuda/*.cu); this header makes the same text
// compile three ways (ggml's ggml-cuda/vendors/hip.h does the same for HIP):
//
//   RW_GPU_CUDA   nvcc: CUDA runtime and cuBLAS as they are
//   RW_GPU_HIP    hipcc -x hip: the cuda* runtime names #defined to hip*; shuffles without
//                 *_sync; warp (wavefront) size 64 (CDNA: MI250X gfx90a, MI300X gfx942)
//   RW_SIMT_EMU   a C++ compiler for the CPU: the SIMT emulation (emu/simt_emu.h) supplies
//                 threadIdx & co, __syncthreads, __shared__ memory, shuffles and votes, with
//                 the warp size RW_SIMT_EMU_WARP (32 or 64); used only by tests
//
// Exactly one of the three is defined by the build (device/cuda/gpu.cmake). Each build also
// defines RW_GPU_NS, the namespace its kernels live in (rw::device::gpu::RW_GPU_NS: cuda, hip,
// emu_w32, emu_w64), so two emulated warp sizes link into one program without clashing.
//
// What differs between vendors beyond names (warp size, shuffle spelling, lane-mask width) is
// wrapped in simt.h; kernels never test a vendor macro themselves.
#pragma once

#if (defined(RW_GPU_CUDA) + defined(RW_GPU_HIP) + defined(RW_SIMT_EMU)) != 1
#error "define exactly one of RW_GPU_CUDA, RW_GPU_HIP, RW_SIMT_EMU (device/cuda/gpu.cmake does)"
#endif
#ifndef RW_GPU_NS
#error "RW_GPU_NS (the kernels' namespace) must be defined by the build"
#endif

#if defined(RW_GPU_CUDA)

#include <cuda_runtime.h>
#if RW_GPU_HAVE_BLAS
#include <cublas_v2.h>
#endif
#define RW_GPU_VENDOR_NAME "CUDA"
#define RW_GPU_API_PREFIX "cuda"  // how the runtime's functions are spelled, for messages
#define RW_GPU_BLAS_NAME "cuBLAS"
#define RW_GPU_COMPUTE_UNITS_NAME "SMs"

#elif defined(RW_GPU_HIP)

#include <hip/hip_runtime.h>
#define RW_GPU_VENDOR_NAME "HIP"
#define RW_GPU_API_PREFIX "hip"
#define RW_GPU_BLAS_NAME "hipBLAS"
#define RW_GPU_COMPUTE_UNITS_NAME "CUs"

// Runtime API: CUDA spelling -> HIP.
#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaErrorNotReady hipErrorNotReady
#define cudaErrorInsufficientDriver hipErrorInsufficientDriver
#define cudaErrorNoDevice hipErrorNoDevice
#define cudaGetErrorName hipGetErrorName
#define cudaGetErrorString hipGetErrorString
#define cudaGetLastError hipGetLastError
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDevice hipGetDevice
#define cudaSetDevice hipSetDevice
#define cudaDeviceProp hipDeviceProp_t
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaDriverGetVersion hipDriverGetVersion
#define cudaRuntimeGetVersion hipRuntimeGetVersion
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMallocHost(pointer, n_bytes) hipHostMalloc((pointer), (n_bytes), hipHostMallocDefault)
#define cudaFreeHost hipHostFree
#define cudaMemcpy hipMemcpy
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemcpyDefault hipMemcpyDefault
#define cudaMemsetAsync hipMemsetAsync
#define cudaStream_t hipStream_t
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaStreamDestroy hipStreamDestroy
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaStreamWaitEvent hipStreamWaitEvent
#define cudaEvent_t hipEvent_t
#define cudaEventCreateWithFlags hipEventCreateWithFlags
#define cudaEventDisableTiming hipEventDisableTiming
#define cudaEventRecord hipEventRecord
#define cudaEventQuery hipEventQuery
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventDestroy hipEventDestroy
#define cudaFuncSetAttribute hipFuncSetAttribute
#define cudaFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize

#if RW_GPU_HAVE_BLAS
// hipBLAS where a ROCm install has it (Debian 12 does not: there the own GEMM kernel runs).
// Not compiled on the project's machines: written against hipBLAS's documented API.
#include <hipblas/hipblas.h>
#define cublasHandle_t hipblasHandle_t
#define cublasStatus_t hipblasStatus_t
#define CUBLAS_STATUS_SUCCESS HIPBLAS_STATUS_SUCCESS
#define cublasCreate hipblasCreate
#define cublasDestroy hipblasDestroy
#define cublasSetStream hipblasSetStream
#define cublasGemmStridedBatchedEx hipblasGemmStridedBatchedEx
#define cublasOperation_t hipblasOperation_t
#define CUBLAS_OP_N HIPBLAS_OP_N
#define CUBLAS_OP_T HIPBLAS_OP_T
#define CUDA_R_32F HIPBLAS_R_32F
#define CUDA_R_16BF HIPBLAS_R_16B
#define cudaDataType hipblasDatatype_t
#define cublasComputeType_t hipblasDatatype_t
#define CUBLAS_COMPUTE_32F HIPBLAS_R_32F
#define CUBLAS_COMPUTE_32F_FAST_TF32 HIPBLAS_R_32F
#define CUBLAS_GEMM_DEFAULT HIPBLAS_GEMM_DEFAULT
#endif

#else  // RW_SIMT_EMU

#include "device/cuda/emu/simt_emu.h"
#define RW_GPU_VENDOR_NAME "SIMT emulation"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Static __shared__ variables: one instance per OS thread, and the emulation runs every fiber of
// a block on one OS thread, one block at a time, so they are per block as on a GPU. (Dynamic
// shared memory, simt.h's dynamic_shared(), is also poisoned with NaN at every block start:
// prefer it for tiles.)
#define __shared__ static thread_local
#define threadIdx (::rw::simt::emu::current_thread().thread_idx)
#define blockIdx (::rw::simt::emu::current_block().block_idx)
#define blockDim (::rw::simt::emu::current_block().block_dim)
#define gridDim (::rw::simt::emu::current_block().grid_dim)
#define __syncthreads() ::rw::simt::emu::sync_block(0)
using ::rw::simt::emu::dim3;
using ::rw::simt::emu::uint3;

#endif
