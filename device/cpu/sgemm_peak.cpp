// sgemm_peak.cpp
#include "device/cpu/sgemm_peak.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "src/common/timer.h"

namespace rw::device::cpu {

double measure_sgemm_gflops(int n, int threads, int repeats) {
  std::vector<float> a(static_cast<std::size_t>(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size(), 0.f);
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(threads);
  double best = 1e30;
  for (int r = 0; r <= repeats; ++r) {
    const double t0 = wall_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    if (r > 0) best = std::min(best, wall_seconds() - t0);  // r == 0 is the warm-up
  }
  openblas_set_num_threads(saved);
  return 2.0 * n * double(n) * n / best / 1e9;
}

int blas_threads() { return std::max(1, openblas_get_num_threads()); }

double measure_gemm_peak_gflops() { return measure_sgemm_gflops(1024, blas_threads(), 5); }

std::string thread_counts_line(int omp_threads) {
  return "threads per rank: " + std::to_string(blas_threads()) + " OpenBLAS (dense GEMMs; the peak above), " +
         std::to_string(omp_threads) + " OpenMP (attention kernels)";
}

std::string thread_mismatch_warning(int omp_threads) {
  const int blas = blas_threads();
  if (blas == omp_threads) return "";
  return "the dense GEMMs run on " + std::to_string(blas) + " OpenBLAS thread(s) per rank but the attention kernels on " +
         std::to_string(omp_threads) + " OpenMP thread(s): set OPENBLAS_NUM_THREADS to OMP_NUM_THREADS (or unset it)";
}

}  // namespace rw::device::cpu
