// attention_fast.cpp: the fast CPU attention tile kernels, and the choice of forward kernel
// (the fused AVX-512 one lives in attention_fwd_fused.cpp; this file has the OpenBLAS one).
//
// Forward (blas): OpenMP tasks over (batch, head, query block); per task an online softmax over
// the key blocks of the step (S = scale*Q K^T and acc += P V by OpenBLAS sgemm on strided views
// of the [tokens, heads, head_dim] tensors, exp/max vectorised), then one (O, lse) merge into
// the running output. Tasks write disjoint rows, so any schedule gives identical bits.
//
// Backward: tasks over (batch, kv head, key block), looping over the query heads of the group
// and the query blocks; dK and dV rows belong to one task; dQ goes to a per-thread buffer,
// summed in thread order at the end. The static round-robin schedule fixes which thread does
// which task, so results are bit-identical run to run for a given thread count.
//
// Tiles are classified with device/attention_mask.h: skipped, computed without a mask, or
// masked element by element. OpenBLAS is held at one thread inside our parallel regions.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "device/attention_mask.h"
#include "device/cpu/attention_tile_support.h"
#include "device/cpu/cpu_backend.h"
#include "device/cpu/fast_exp.h"
#include "device/cpu/fused_tiles.h"
#include "device/cpu/openblas_single_thread.h"
#include "src/common/fatal.h"
#include "src/common/host_buffer.h"

namespace rw::device::cpu {

void check_attn_shape(const AttnShape& s, const AttnTiling& t) {
  RW_CHECK(s.batch >= 0 && s.n_q >= 0 && s.n_k >= 0 && s.head_dim > 0, "bad attention shape");
  RW_CHECK(s.heads > 0 && s.kv_heads > 0 && s.heads % s.kv_heads == 0,
           "heads (" + std::to_string(s.heads) + ") must be a multiple of kv_heads (" +
               std::to_string(s.kv_heads) + ")");
  RW_CHECK(t.block_q > 0 && t.block_k > 0, "attention block sizes must be positive");
}

bool fused_fwd_kernel_available(int head_dim) {
  return avx512::avx512_available() && head_dim > 0 && head_dim % avx512::kKeyPanel == 0;
}

const char* fwd_kernel_name(FwdKernel kernel) {
  switch (kernel) {
    case FwdKernel::automatic: return "automatic";
    case FwdKernel::fused_avx512: return "fused-avx512";
    case FwdKernel::fused_portable: return "fused-portable";
    case FwdKernel::blas: return "blas";
  }
  return "unknown";
}

FwdKernel resolve_fwd_kernel(FwdKernel requested, int head_dim) {
  if (requested == FwdKernel::automatic) {
    const char* env = std::getenv("RINGWORLD_ATTN_FWD_KERNEL");
    const std::string choice = env ? env : "";
    if (choice == "blas") requested = FwdKernel::blas;
    else if (choice == "fused") requested = FwdKernel::fused_avx512;
    else if (choice == "fused-portable") requested = FwdKernel::fused_portable;
    else if (!choice.empty() && choice != "auto")
      RW_FAIL("RINGWORLD_ATTN_FWD_KERNEL='" + choice + "' is not one of auto, fused, fused-portable, blas");
  }
  if (requested == FwdKernel::automatic)
    return fused_fwd_kernel_available(head_dim) ? FwdKernel::fused_avx512 : FwdKernel::blas;
  if (requested == FwdKernel::fused_avx512)
    RW_CHECK(fused_fwd_kernel_available(head_dim),
             "the fused AVX-512 attention forward needs an AVX-512F CPU and head_dim % 16 == 0 (head_dim " +
                 std::to_string(head_dim) + ")");
  if (requested == FwdKernel::fused_portable)
    RW_CHECK(head_dim > 0 && head_dim % avx512::kKeyPanel == 0,
             "the fused attention forward needs head_dim % 16 == 0 (head_dim " + std::to_string(head_dim) + ")");
  return requested;
}

void attn_fwd_step_fast(const AttnFwdStepArgs& a, const ProgressHook& hook, FwdKernel kernel) {
  switch (resolve_fwd_kernel(kernel, a.shape.head_dim)) {
    case FwdKernel::fused_avx512: return attn_fwd_step_fused(a, hook, avx512_fused_tiles());
    case FwdKernel::fused_portable: return attn_fwd_step_fused(a, hook, portable_fused_tiles());
    default: return attn_fwd_step_blas(a, hook);
  }
}

void attn_fwd_step_blas(const AttnFwdStepArgs& a, const ProgressHook& hook) {
  const AttnShape& s = a.shape;
  check_attn_shape(s, a.tiling);
  if (s.batch == 0 || s.n_q == 0 || s.n_k == 0) return hook();
  const int d = s.head_dim, group = s.heads / s.kv_heads;
  const int bq = std::min(a.tiling.block_q, s.n_q), bk = std::min(a.tiling.block_k, s.n_k);
  const int n_qb = (s.n_q + bq - 1) / bq, n_kb = (s.n_k + bk - 1) / bk;
  const int ld_q = s.heads * d, ld_k = s.kv_heads * d;
  const auto q_sum = summarize_blocks(a.mask.q_pos, a.mask.q_seg, s.batch, s.n_q, bq);
  const auto k_sum = summarize_blocks(a.mask.k_pos, a.mask.k_seg, s.batch, s.n_k, bk);
  const long n_tasks = static_cast<long>(s.batch) * s.heads * n_qb;
  OpenblasSingleThread single;

#pragma omp parallel
  {
    HostVector<float> scores(static_cast<std::size_t>(bq) * bk), acc(static_cast<std::size_t>(bq) * d);
    std::vector<float> row_max(bq), row_sum(bq);
    const bool is_master = omp_get_thread_num() == 0;
#pragma omp for schedule(dynamic, 1)
    for (long task = 0; task < n_tasks; ++task) {
      const int qb = static_cast<int>(task % n_qb);
      const int h = static_cast<int>((task / n_qb) % s.heads);
      const int b = static_cast<int>(task / (static_cast<long>(n_qb) * s.heads));
      const int kvh = h / group;
      const int q0 = qb * bq, rows = std::min(bq, s.n_q - q0);
      const float* q_blk = a.q + (static_cast<std::size_t>(b) * s.n_q + q0) * ld_q + h * d;
      const int32_t* qp = a.mask.q_pos + static_cast<std::size_t>(b) * s.n_q + q0;
      const int32_t* qs = a.mask.q_seg + static_cast<std::size_t>(b) * s.n_q + q0;
      std::fill(row_max.begin(), row_max.end(), kNegInf);
      std::fill(row_sum.begin(), row_sum.end(), 0.f);
      std::fill(acc.begin(), acc.end(), 0.f);
      bool any_tile = false;
      for (int kb = 0; kb < n_kb; ++kb) {
        TileKind kind = classify_tile(q_sum[static_cast<std::size_t>(b) * n_qb + qb],
                                      k_sum[static_cast<std::size_t>(b) * n_kb + kb], a.mask.causal);
        if (kind == TileKind::skip) continue;
        any_tile = true;
        const int k0 = kb * bk, cols = std::min(bk, s.n_k - k0);
        const std::size_t k_off = (static_cast<std::size_t>(b) * s.n_k + k0) * ld_k + kvh * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, a.scale, q_blk, ld_q,
                    a.k + k_off, ld_k, 0.f, scores.data(), bk);
        if (kind == TileKind::partial)
          apply_mask(scores.data(), rows, cols, bk, qp, qs,
                     a.mask.k_pos + static_cast<std::size_t>(b) * s.n_k + k0,
                     a.mask.k_seg + static_cast<std::size_t>(b) * s.n_k + k0, a.mask.causal);
        for (int r = 0; r < rows; ++r) {
          float* srow = scores.data() + static_cast<std::size_t>(r) * bk;
          const float m_new = std::max(row_max[r], max_of(srow, cols));
          if (m_new == kNegInf) {  // nothing visible to this row yet: P row is zero
            std::fill(srow, srow + cols, 0.f);
            continue;
          }
          const float tile_sum = exp_shift_sum(srow, cols, m_new);
          const float correction = row_max[r] == kNegInf ? 0.f : exp_fast(row_max[r] - m_new);
          row_sum[r] = row_sum[r] * correction + tile_sum;
          if (correction != 1.f) {
            float* arow = acc.data() + static_cast<std::size_t>(r) * d;
#pragma omp simd
            for (int c = 0; c < d; ++c) arow[c] *= correction;
          }
          row_max[r] = m_new;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, cols, 1.f, scores.data(),
                    bk, a.v + k_off, ld_k, 1.f, acc.data(), d);
      }
      if (any_tile) {
        for (int r = 0; r < rows; ++r) {
          if (row_sum[r] == 0.f) continue;  // no visible key for this row in this step
          const float step_lse = row_max[r] + std::log(row_sum[r]);
          float* lse = a.lse + (static_cast<std::size_t>(b) * s.heads + h) * s.n_q + q0 + r;
          const float old_lse = *lse;
          const float new_lse = merged_lse(old_lse, step_lse);
          const float w_old = old_lse == kNegInf ? 0.f : std::exp(old_lse - new_lse);
          const float w_new = std::exp(step_lse - new_lse) / row_sum[r];
          float* orow = a.out + (static_cast<std::size_t>(b) * s.n_q + q0 + r) * ld_q + h * d;
          const float* arow = acc.data() + static_cast<std::size_t>(r) * d;
#pragma omp simd
          for (int c = 0; c < d; ++c) orow[c] = w_old * orow[c] + w_new * arow[c];
          *lse = new_lse;
        }
      }
      if (is_master) hook();
    }
  }
}

void attn_bwd_step_fast(const AttnBwdStepArgs& a, const ProgressHook& hook) {
  const AttnShape& s = a.shape;
  check_attn_shape(s, a.tiling);
  if (s.batch == 0 || s.n_q == 0 || s.n_k == 0) return hook();
  const int d = s.head_dim, group = s.heads / s.kv_heads;
  const int bq = std::min(a.tiling.block_q, s.n_q), bk = std::min(a.tiling.block_k, s.n_k);
  const int n_qb = (s.n_q + bq - 1) / bq, n_kb = (s.n_k + bk - 1) / bk;
  const int ld_q = s.heads * d, ld_k = s.kv_heads * d;
  const auto q_sum = summarize_blocks(a.mask.q_pos, a.mask.q_seg, s.batch, s.n_q, bq);
  const auto k_sum = summarize_blocks(a.mask.k_pos, a.mask.k_seg, s.batch, s.n_k, bk);
  const long n_tasks = static_cast<long>(s.batch) * s.kv_heads * n_kb;
  const std::size_t dq_count = static_cast<std::size_t>(s.batch) * s.n_q * ld_q;
  const int n_threads = static_cast<int>(std::min<long>(omp_get_max_threads(), n_tasks));
  // Thread 0 accumulates into dq itself; the others into private buffers summed at the end.
  // OpenMP may give the region fewer threads than asked for (OMP_DYNAMIC, OMP_THREAD_LIMIT):
  // only the buffers of the threads it gave are allocated and summed.
  std::vector<HostVector<float>> dq_private(std::max(0, n_threads - 1));
  int team = 1;
  OpenblasSingleThread single;

#pragma omp parallel num_threads(n_threads)
  {
    const int tid = omp_get_thread_num();
#pragma omp single nowait
    team = omp_get_num_threads();
    float* dq_mine = a.dq;
    if (tid > 0) {
      dq_private[tid - 1].assign(dq_count, 0.f);
      dq_mine = dq_private[tid - 1].data();
    }
    HostVector<float> p(static_cast<std::size_t>(bq) * bk), dp(static_cast<std::size_t>(bq) * bk);
#pragma omp for schedule(static, 1)
    for (long task = 0; task < n_tasks; ++task) {
      const int kb = static_cast<int>(task % n_kb);
      const int kvh = static_cast<int>((task / n_kb) % s.kv_heads);
      const int b = static_cast<int>(task / (static_cast<long>(n_kb) * s.kv_heads));
      const int k0 = kb * bk, cols = std::min(bk, s.n_k - k0);
      const std::size_t k_off = (static_cast<std::size_t>(b) * s.n_k + k0) * ld_k + kvh * d;
      const BlockSummary& ks = k_sum[static_cast<std::size_t>(b) * n_kb + kb];
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int qb = 0; qb < n_qb; ++qb) {
          TileKind kind = classify_tile(q_sum[static_cast<std::size_t>(b) * n_qb + qb], ks, a.mask.causal);
          if (kind == TileKind::skip) continue;
          const int q0 = qb * bq, rows = std::min(bq, s.n_q - q0);
          const std::size_t q_off = (static_cast<std::size_t>(b) * s.n_q + q0) * ld_q + h * d;
          const std::size_t row0 = (static_cast<std::size_t>(b) * s.heads + h) * s.n_q + q0;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, a.scale, a.q + q_off,
                      ld_q, a.k + k_off, ld_k, 0.f, p.data(), bk);
          if (kind == TileKind::partial)
            apply_mask(p.data(), rows, cols, bk, a.mask.q_pos + static_cast<std::size_t>(b) * s.n_q + q0,
                       a.mask.q_seg + static_cast<std::size_t>(b) * s.n_q + q0,
                       a.mask.k_pos + static_cast<std::size_t>(b) * s.n_k + k0,
                       a.mask.k_seg + static_cast<std::size_t>(b) * s.n_k + k0, a.mask.causal);
          for (int r = 0; r < rows; ++r) {  // P = exp(S - lse), recomputed from the saved lse
            float* prow = p.data() + static_cast<std::size_t>(r) * bk;
            const float lse = a.lse[row0 + r];
            if (lse == kNegInf) std::fill(prow, prow + cols, 0.f);
            else exp_shift_sum(prow, cols, lse);
          }
          // dV += P^T dO
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, d, rows, 1.f, p.data(), bk,
                      a.dout + q_off, ld_q, 1.f, a.dv + k_off, ld_k);
          // dP = dO V^T
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, d, 1.f, a.dout + q_off,
                      ld_q, a.v + k_off, ld_k, 0.f, dp.data(), bk);
          for (int r = 0; r < rows; ++r) {  // dS = P * (dP - delta), kept in dp
            float* prow = p.data() + static_cast<std::size_t>(r) * bk;
            float* dprow = dp.data() + static_cast<std::size_t>(r) * bk;
            ds_from_dp(prow, dprow, cols, a.delta[row0 + r]);
          }
          // dQ += scale dS K ; dK += scale dS^T Q
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, cols, a.scale, dp.data(),
                      bk, a.k + k_off, ld_k, 1.f, dq_mine + q_off, ld_q);
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, d, rows, a.scale, dp.data(), bk,
                      a.q + q_off, ld_q, 1.f, a.dk + k_off, ld_k);
        }
      }
      if (tid == 0) hook();
    }
  }
  // Sum the private dQ buffers in thread order (fixed order: repeatable bits).
  dq_private.resize(team - 1);
  if (!dq_private.empty()) {
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < dq_count; ++i) {
      float sum = a.dq[i];
      for (const auto& buf : dq_private) sum += buf[i];
      a.dq[i] = sum;
    }
  }
}

void attn_row_dot_fast(const AttnShape& s, const float* out, const float* dout, float* delta) {
  const int d = s.head_dim;
  const long n_rows = static_cast<long>(s.batch) * s.n_q * s.heads;
#pragma omp parallel for schedule(static)
  for (long row = 0; row < n_rows; ++row) {  // row enumerates (b, i, h) in memory order
    const int h = static_cast<int>(row % s.heads);
    const long bi = row / s.heads;
    const int i = static_cast<int>(bi % s.n_q);
    const int b = static_cast<int>(bi / s.n_q);
    const float* o = out + static_cast<std::size_t>(row) * d;
    const float* g = dout + static_cast<std::size_t>(row) * d;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < d; ++c) sum += o[c] * g[c];
    delta[(static_cast<std::size_t>(b) * s.heads + h) * s.n_q + i] = sum;
  }
}

void attn_merge_fast(const AttnShape& s, float* out_a, float* lse_a, const float* out_b,
                     const float* lse_b) {
  const int d = s.head_dim;
  const long n_rows = static_cast<long>(s.batch) * s.n_q * s.heads;
#pragma omp parallel for schedule(static)
  for (long row = 0; row < n_rows; ++row) {
    const int h = static_cast<int>(row % s.heads);
    const long bi = row / s.heads;
    const int i = static_cast<int>(bi % s.n_q);
    const int b = static_cast<int>(bi / s.n_q);
    const std::size_t r = (static_cast<std::size_t>(b) * s.heads + h) * s.n_q + i;
    const float la = lse_a[r], lb = lse_b[r];
    const float l = merged_lse(la, lb);
    if (l == kNegInf) continue;
    const float wa = la == kNegInf ? 0.f : std::exp(la - l);
    const float wb = lb == kNegInf ? 0.f : std::exp(lb - l);
    float* oa = out_a + static_cast<std::size_t>(row) * d;
    const float* ob = out_b + static_cast<std::size_t>(row) * d;
#pragma omp simd
    for (int c = 0; c < d; ++c) oa[c] = wa * oa[c] + wb * ob[c];
    lse_a[r] = l;
  }
}

}  // namespace rw::device::cpu
