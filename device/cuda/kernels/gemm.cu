// gemm.cu: row-major GEMM. cuBLAS (cublasGemmStridedBatchedEx: fp32, or bf16 inputs with fp32
// accumulation; TF32 only when the backend opts in) when the build has a BLAS and A and B share
// a type; otherwise the project's own tiled kernel, which takes any mix of f32/bf16 storage and
// is also the GPU-side reference the tests hold cuBLAS against.
//
// Own kernel: 64 x 64 tiles of C per block of 256 threads (16 x 16, each 4 x 4 outputs strided
// by 16 so neighbouring threads read neighbouring shared words), K in steps of 16 staged in
// shared memory as fp32 (converted on load), fp32 accumulation in the order k = 0, 1, ...; the
// two barriers of the K loop are named so the emulation's test can drop them.
#include "device/cuda/kernels/common.cuh"

namespace rw::device::gpu::RW_GPU_NS {
namespace {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kGemmThreads = 256;
constexpr int kPerThread = 4;  // outputs per thread in each direction
static_assert((kTileM / kPerThread) * (kTileN / kPerThread) == kGemmThreads, "tile shape");

struct GemmShared {
  float a[kTileK][kTileM + 4];  // A tile, k-major (padded against bank conflicts)
  float b[kTileK][kTileN + 4];
};

struct GemmParams {
  const void* a;
  const void* b;
  void* c;
  int64_t m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c;
  float alpha, beta;
  int trans_a, trans_b;
};

template <class TA, class TB, class TC>
__global__ void __launch_bounds__(kGemmThreads) gemm_tiled_kernel(GemmParams p) {
  GemmShared& sm = *dynamic_shared<GemmShared>();
  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % (kTileN / kPerThread), ty = tid / (kTileN / kPerThread);
  const int64_t batch = blockIdx.z;
  const TA* A = static_cast<const TA*>(p.a) + batch * p.stride_a;
  const TB* B = static_cast<const TB*>(p.b) + batch * p.stride_b;
  TC* C = static_cast<TC*>(p.c) + batch * p.stride_c;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kTileM, col0 = static_cast<int64_t>(blockIdx.x) * kTileN;
  float acc[kPerThread][kPerThread];
  for (int i = 0; i < kPerThread; ++i)
    for (int j = 0; j < kPerThread; ++j) acc[i][j] = 0.f;

  for (int64_t k0 = 0; k0 < p.k; k0 += kTileK) {
    for (int r = 0; r < kTileM * kTileK / kGemmThreads; ++r) {
      const int e = tid + r * kGemmThreads;
      // Consecutive threads read consecutive addresses of A in either layout.
      const int row = p.trans_a ? e % kTileM : e / kTileK;
      const int kk = p.trans_a ? e / kTileM : e % kTileK;
      const int64_t gr = row0 + row, gk = k0 + kk;
      float v = 0.f;
      if (gr < p.m && gk < p.k) v = to_float(p.trans_a ? A[gk * p.lda + gr] : A[gr * p.lda + gk]);
      sm.a[kk][row] = v;
    }
    for (int r = 0; r < kTileN * kTileK / kGemmThreads; ++r) {
      const int e = tid + r * kGemmThreads;
      const int col = p.trans_b ? e / kTileK : e % kTileN;
      const int kk = p.trans_b ? e % kTileK : e / kTileN;
      const int64_t gc = col0 + col, gk = k0 + kk;
      float v = 0.f;
      if (gc < p.n && gk < p.k) v = to_float(p.trans_b ? B[gc * p.ldb + gk] : B[gk * p.ldb + gc]);
      sm.b[kk][col] = v;
    }
    RW_SYNCTHREADS(kBarrierGemmTileLoaded);
    for (int kk = 0; kk < kTileK; ++kk) {
      float a_frag[kPerThread], b_frag[kPerThread];
      for (int i = 0; i < kPerThread; ++i) a_frag[i] = sm.a[kk][ty + i * (kTileM / kPerThread)];
      for (int j = 0; j < kPerThread; ++j) b_frag[j] = sm.b[kk][tx + j * (kTileN / kPerThread)];
      for (int i = 0; i < kPerThread; ++i)
        for (int j = 0; j < kPerThread; ++j) acc[i][j] += a_frag[i] * b_frag[j];
    }
    RW_SYNCTHREADS(kBarrierGemmTileConsumed);
  }

  for (int i = 0; i < kPerThread; ++i) {
    const int64_t gr = row0 + ty + i * (kTileM / kPerThread);
    if (gr >= p.m) continue;
    for (int j = 0; j < kPerThread; ++j) {
      const int64_t gc = col0 + tx + j * (kTileN / kPerThread);
      if (gc >= p.n) continue;
      float v = p.alpha * acc[i][j];
      if (p.beta != 0.f) v += p.beta * to_float(C[gr * p.ldc + gc]);  // C unread when beta == 0
      C[gr * p.ldc + gc] = from_float<TC>(v);
    }
  }
}

template <class TA, class TB, class TC>
void launch_tiled(const GemmParams& p, int64_t batch, const LaunchContext& ctx) {
  const int64_t blocks_m = (p.m + kTileM - 1) / kTileM, blocks_n = (p.n + kTileN - 1) / kTileN;
  RW_CHECK(blocks_m <= 65535 && batch <= 65535 && blocks_n < (int64_t(1) << 31),
           "gemm: too large for the tiled kernel's grid (m " + std::to_string(p.m) + ", batch " +
               std::to_string(batch) + ")");
  launch_kernel(&gemm_tiled_kernel<TA, TB, TC>,
                dim3(static_cast<unsigned>(blocks_n), static_cast<unsigned>(blocks_m), static_cast<unsigned>(batch)),
                dim3(kGemmThreads), sizeof(GemmShared), ctx, p);
}

template <class TA, class TB>
void launch_tiled_c(const GemmDesc& g, const GemmParams& p, const LaunchContext& ctx) {
  if (g.c_type == DType::bf16)
    launch_tiled<TA, TB, bf16_t>(p, g.batch, ctx);
  else
    launch_tiled<TA, TB, float>(p, g.batch, ctx);
}

#if RW_GPU_HAVE_BLAS
#define RW_BLAS_CHECK(call)                                                                                       \
  do {                                                                                                            \
    const cublasStatus_t rw_blas_status_ = (call);                                                                \
    if (rw_blas_status_ != CUBLAS_STATUS_SUCCESS)                                                                 \
      ::rw::fatal(#call, __FILE__, __LINE__, "BLAS status " + std::to_string(static_cast<int>(rw_blas_status_))); \
  } while (0)

bool fits_int(int64_t v) { return v >= 0 && v <= 2147483647; }

// Row-major C[m, n] = op(A) op(B) is column-major C^T[n, m] = op(B)^T op(A)^T: B and A swap
// places and keep their transposes.
bool gemm_blas(const GemmDesc& g, const LaunchContext& ctx) {
  if (ctx.blas == nullptr || g.a_type != g.b_type) return false;
  if (!fits_int(g.m) || !fits_int(g.n) || !fits_int(g.k) || !fits_int(g.lda) || !fits_int(g.ldb) || !fits_int(g.ldc) ||
      !fits_int(g.batch))
    return false;
  cublasHandle_t handle = static_cast<cublasHandle_t>(ctx.blas);
  RW_BLAS_CHECK(cublasSetStream(handle, static_cast<cudaStream_t>(ctx.stream)));
  const cudaDataType ab = g.a_type == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType ct = g.c_type == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute =
      g.a_type == DType::f32 && ctx.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const float alpha = g.alpha, beta = g.beta;
  RW_BLAS_CHECK(cublasGemmStridedBatchedEx(
      handle, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(g.n),
      static_cast<int>(g.m), static_cast<int>(g.k), &alpha, g.b, ab, static_cast<int>(g.ldb), g.stride_b, g.a, ab,
      static_cast<int>(g.lda), g.stride_a, &beta, g.c, ct, static_cast<int>(g.ldc), g.stride_c,
      static_cast<int>(g.batch), compute, CUBLAS_GEMM_DEFAULT));
  return true;
}
#endif

int64_t leading_dimension(const ConstTensorView& v) {
  int64_t ld = v.stride[0] > v.shape[1] ? v.stride[0] : v.shape[1];
  return ld > 1 ? ld : 1;
}

}  // namespace

void gemm_tiled(const GemmDesc& g, const LaunchContext& ctx) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  GemmParams p{g.a,
               g.b,
               g.c,
               g.m,
               g.n,
               g.k,
               g.lda,
               g.ldb,
               g.ldc,
               g.stride_a,
               g.stride_b,
               g.stride_c,
               g.alpha,
               g.beta,
               g.trans_a ? 1 : 0,
               g.trans_b ? 1 : 0};
  const bool a16 = g.a_type == DType::bf16, b16 = g.b_type == DType::bf16;
  if (a16 && b16)
    launch_tiled_c<bf16_t, bf16_t>(g, p, ctx);
  else if (a16)
    launch_tiled_c<bf16_t, float>(g, p, ctx);
  else if (b16)
    launch_tiled_c<float, bf16_t>(g, p, ctx);
  else
    launch_tiled_c<float, float>(g, p, ctx);
}

void gemm(const GemmDesc& g, const LaunchContext& ctx) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
#if RW_GPU_HAVE_BLAS
  if (gemm_blas(g, ctx)) return;
#endif
  gemm_tiled(g, ctx);
}

void run(GemmArgs& a, const LaunchContext& ctx) {
  GemmDesc g;
  g.trans_a = a.trans_a == Transpose::yes;
  g.trans_b = a.trans_b == Transpose::yes;
  g.m = a.c.shape[0];
  g.n = a.c.shape[1];
  g.k = g.trans_a ? a.a.shape[0] : a.a.shape[1];
  g.alpha = a.alpha;
  g.beta = a.beta;
  g.a = a.a.data;
  g.a_type = a.a.dtype;
  g.lda = leading_dimension(a.a);
  g.b = a.b.data;
  g.b_type = a.b.dtype;
  g.ldb = leading_dimension(a.b);
  g.c = a.c.data;
  g.c_type = a.c.dtype;
  g.ldc = leading_dimension(a.c);
  gemm(g, ctx);
}

}  // namespace rw::device::gpu::RW_GPU_NS
