// mma_test_kernels.cu: mma_test_kernels.cuh compiled by a GPU toolchain (test_gpu_cuda, test_gpu_hip).
#include "tests/gpu/mma_test_kernels.cuh"
