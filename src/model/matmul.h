// matmul.h: the MatMul implementations of the reference model (reference_transformer.h): fp64
// on the CPU (the tests' oracle) and fp32 through a backend whose device memory is host memory
// (the tests' plain fp32 run). The device model calls the backend's gemm kernel itself.
#pragma once
#include "device/backend.h"
#include "device/cpu/cpu_dgemm.h"
#include "src/common/fatal.h"
#include "src/model/model_interfaces.h"

namespace rw::model {

class BackendMatMul : public MatMul<float> {
 public:
  explicit BackendMatMul(device::Backend& backend) : backend_(backend) {}
  void operator()(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) override {
    RW_CHECK(m < (int64_t(1) << 31) && n < (int64_t(1) << 31) && k < (int64_t(1) << 31), "GEMM too large");
    backend_.gemm(ta ? device::Transpose::yes : device::Transpose::no,
                  tb ? device::Transpose::yes : device::Transpose::no, static_cast<int>(m), static_cast<int>(n),
                  static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
                  static_cast<int>(ldc));
  }

 private:
  device::Backend& backend_;
};

class CpuMatMulDouble : public MatMul<double> {
 public:
  void operator()(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                  const double* b, int64_t ldb, double beta, double* c, int64_t ldc) override {
    device::cpu::dgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
};

}  // namespace rw::model
