// blas_kernel_select.h: makes sure OpenBLAS runs kernels that fit this CPU.
// OpenBLAS built with DYNAMIC_ARCH picks its kernels from CPUID when the library loads; older
// releases (Debian 12 ships 0.3.21) do not know newer CPUs and fall back to an SSE3 kernel
// ("Prescott"), 5-6x slower than the AVX-512 one on the same core (measured: 12 vs 69 GFLOP/s
// sgemm on one core). The choice can only be overridden by OPENBLAS_CORETYPE before the library
// loads, so when the kernel is a pre-AVX2 one on a CPU with AVX2/AVX-512, this re-executes the
// program (same pid, same arguments; works under mpirun before MPI_Init) with OPENBLAS_CORETYPE
// set to the matching family. A user's own OPENBLAS_CORETYPE is never overridden.
#pragma once
#include <string>

namespace rw::device::cpu {

// Call first thing in main(), before MPI_Init. Returns only if no re-exec was needed.
void select_blas_kernel(int argc, char** argv);

// The OpenBLAS kernel family in use (e.g. "SkylakeX"), for benchmark headers and logs.
std::string blas_kernel_name();

}  // namespace rw::device::cpu
