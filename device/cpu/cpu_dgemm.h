// cpu_dgemm.h: fp64 GEMM on the CPU (OpenBLAS dgemm), row-major, for fp64 reference models.
#pragma once
#include <cstdint>

namespace rw::device::cpu {
void dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
           const double* b, int64_t ldb, double beta, double* c, int64_t ldc);
}  // namespace rw::device::cpu
