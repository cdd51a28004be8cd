// sgemm_peak.h: the sgemm rate this process reaches right now (OpenBLAS, square matrices), the
// peak that training MFU and benchmark ratios are measured against, and the thread count the
// dense GEMMs run with. MFU is only meaningful against a peak measured with the threads the
// GEMMs use: OpenBLAS's own count (OPENBLAS_NUM_THREADS, else OMP_NUM_THREADS, else every core),
// not OpenMP's, which the attention kernels use. The two may differ (a job script that sets
// OPENBLAS_NUM_THREADS=1 beside OMP_NUM_THREADS=8 runs its GEMMs on one thread).
#pragma once
#include <string>

namespace rw::device::cpu {

// GFLOP/s of C = A B for n x n float matrices with `threads` OpenBLAS threads: the best of
// `repeats` timed runs after one warm-up.
double measure_sgemm_gflops(int n, int threads, int repeats);

// Threads OpenBLAS gives a GEMM called outside an OpenMP region (the dense GEMMs of a step).
int blas_threads();

// The peak MFU is measured against: measure_sgemm_gflops(1024, blas_threads(), 5).
double measure_gemm_peak_gflops();

// "threads per rank: 2 OpenBLAS (dense GEMMs; the peak above), 2 OpenMP (attention kernels)".
std::string thread_counts_line(int omp_threads);

// "" when the dense GEMMs (blas_threads()) and the OpenMP kernels (omp_threads) use the same
// number of threads, else one sentence saying so and how to make them agree.
std::string thread_mismatch_warning(int omp_threads);

}  // namespace rw::device::cpu
