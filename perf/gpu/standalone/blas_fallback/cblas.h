// cblas.h (stand-in): the few CBLAS / OpenBLAS declarations device/cpu/ uses, for the standalone
// GPU-check build on a machine without OpenBLAS (perf/gpu/standalone/CMakeLists.txt). The
// implementation (blas_fallback.cpp) is plain loops: correct, slow; the GPU checks never time
// the cpu backend. Row-major only (all ringworld uses).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans_a, enum CBLAS_TRANSPOSE trans_b, int m, int n,
                 int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);
void cblas_dgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans_a, enum CBLAS_TRANSPOSE trans_b, int m, int n,
                 int k, double alpha, const double* a, int lda, const double* b, int ldb, double beta, double* c,
                 int ldc);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);
char* openblas_get_corename(void);

#ifdef __cplusplus
}
#endif
