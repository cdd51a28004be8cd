// attention.cu: the plainly correct GPU attention path (the GPU twin of the CPU's OpenBLAS one):
// tile GEMMs (gemm.cu: cuBLAS or the own kernel) between small softmax kernels, all in fp32
// (bf16 q/k/v/dout are converted into fp32 copies first, as the CPU backend does). It is the
// reference the fused kernels are held against, and memory-bound by design (gpu.md: each score
// costs 4d FLOPs against >= 12 bytes of S/P traffic).
//
// Forward, per chunk of query rows (block_q) and, inside it, per chunk of keys (block_k):
//   S = scale Q K^T                         one strided-batched GEMM per (batch, group member)
//   online softmax (softmax_update)         masked scores, running max m and sum l per row, P
//                                           written over S, the accumulator rescaled
//   acc += P V                              GEMM with beta = 1
// then (finish) the step's (acc / l, m + log l) merged into the running (out, lse): a row that
// saw no visible key is left alone (out 0, lse -inf, as the contract says).
// Backward, per (query chunk, key chunk), with P recomputed from the final lse:
//   P = exp(S - lse), dV += P^T dO, dP = dO V^T, dS = P (dP - delta) scale, dQ += dS K,
//   dK += dS^T Q
// dK/dV of one kv head are written by the query heads of its group one GEMM after another
// (never two writers at once), so the backward is deterministic without atomics.
//
// Row kernels use one warp per row (shuffle reductions); masks are device/attention_mask.h's.
// Scratch: S (and dP) for batch * heads * block_q * block_k fp32 values, capped at 2^26 by
// shrinking the chunks; the accumulator and the fp32 copies of bf16 inputs.
#include <cmath>

#include "device/attention_mask.h"
#include "device/cuda/kernels/common.cuh"

namespace rw::device::gpu::RW_GPU_NS {
namespace {

constexpr int kRowsPerBlock = kThreads / warp_size();  // one warp per row

struct ChunkDims {
  int heads, kv_heads, head_dim;
  int n_q, n_k;  // of the whole call (mask and global row indexing)
  int q0, rows;  // this chunk of queries
  int k0, cols;  // this chunk of keys
};

struct MaskPtrs {
  const int32_t* q_pos;
  const int32_t* q_seg;
  const int32_t* k_pos;
  const int32_t* k_seg;
  int causal;
};

__device__ __forceinline__ float merged_lse(float a, float b) {
  if (a == neg_infinity()) return b;
  if (b == neg_infinity()) return a;
  const float hi = a > b ? a : b;
  return hi + log1pf(expf(-fabsf(a - b)));
}

// Online softmax over one key chunk; warp per chunk row rho = (b * heads + h) * rows + i.
__global__ void softmax_update_kernel(float* scores, ChunkDims dims, MaskPtrs mask, int64_t n_rows, float* m_run,
                                      float* l_run, float* acc) {
  const int warp = static_cast<int>(threadIdx.x) / warp_size(), lane = lane_id();
  for (int64_t rho = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp; rho < n_rows;
       rho += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t b = rho / (static_cast<int64_t>(dims.heads) * dims.rows), i = rho % dims.rows;
    const int64_t q = b * dims.n_q + dims.q0 + i;
    const int32_t qp = mask.q_pos[q], qs = mask.q_seg[q];
    float* row = scores + rho * dims.cols;
    float mx = neg_infinity();
    for (int j = lane; j < dims.cols; j += warp_size()) {
      const int64_t k = b * dims.n_k + dims.k0 + j;
      const float s = key_visible(qp, qs, mask.k_pos[k], mask.k_seg[k], mask.causal != 0) ? row[j] : neg_infinity();
      row[j] = s;
      mx = fmaxf(mx, s);
    }
    mx = warp_max(mx);
    const float m_old = m_run[rho], l_old = l_run[rho];
    const float m_new = fmaxf(m_old, mx);
    if (m_new == neg_infinity()) {  // no visible key yet: P = 0, nothing to rescale
      for (int j = lane; j < dims.cols; j += warp_size()) row[j] = 0.f;
      continue;
    }
    const float alpha = m_old == neg_infinity() ? 0.f : expf(m_old - m_new);
    float sum = 0.f;
    for (int j = lane; j < dims.cols; j += warp_size()) {
      const float s = row[j];
      const float p = s == neg_infinity() ? 0.f : expf(s - m_new);
      row[j] = p;
      sum += p;
    }
    sum = warp_sum(sum);
    if (alpha != 1.f)
      for (int dd = lane; dd < dims.head_dim; dd += warp_size()) acc[rho * dims.head_dim + dd] *= alpha;
    sync_warp();  // every lane has read m_run / l_run before lane 0 writes them
    if (lane == 0) {
      m_run[rho] = m_new;
      l_run[rho] = alpha * l_old + sum;
    }
  }
}

// Merges the chunk's (acc / l, m + log l) into the running (out, lse).
__global__ void finish_kernel(float* out, float* lse, ChunkDims dims, int64_t n_rows, const float* m_run,
                              const float* l_run, const float* acc) {
  const int warp = static_cast<int>(threadIdx.x) / warp_size(), lane = lane_id();
  for (int64_t rho = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp; rho < n_rows;
       rho += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const float l = l_run[rho];
    if (!(l > 0.f)) continue;  // saw no visible key: stays as it was
    const int64_t b = rho / (static_cast<int64_t>(dims.heads) * dims.rows);
    const int64_t h = (rho / dims.rows) % dims.heads, i = rho % dims.rows;
    const int64_t lse_index = (b * dims.heads + h) * dims.n_q + dims.q0 + i;
    const float step_lse = m_run[rho] + logf(l);
    const float old_lse = lse[lse_index];
    const float new_lse = merged_lse(old_lse, step_lse);
    const float w_old = old_lse == neg_infinity() ? 0.f : expf(old_lse - new_lse);
    const float w_new = expf(step_lse - new_lse) / l;
    float* o = out + ((b * dims.n_q + dims.q0 + i) * dims.heads + h) * dims.head_dim;
    for (int dd = lane; dd < dims.head_dim; dd += warp_size())
      o[dd] = w_old * o[dd] + w_new * acc[rho * dims.head_dim + dd];
    sync_warp();  // every lane has read lse before lane 0 writes it
    if (lane == 0) lse[lse_index] = new_lse;
  }
}

// P = exp(S - lse) where visible (0 elsewhere, and on rows whose lse is -inf); elementwise.
__global__ void backward_probs_kernel(float* scores, ChunkDims dims, MaskPtrs mask, int64_t n_elements,
                                      const float* lse) {
  for (int64_t e = global_thread_x(); e < n_elements; e += grid_threads_x()) {
    const int64_t rho = e / dims.cols, j = e % dims.cols;
    const int64_t b = rho / (static_cast<int64_t>(dims.heads) * dims.rows);
    const int64_t h = (rho / dims.rows) % dims.heads, i = rho % dims.rows;
    const int64_t q = b * dims.n_q + dims.q0 + i, k = b * dims.n_k + dims.k0 + j;
    const float row_lse = lse[(b * dims.heads + h) * dims.n_q + dims.q0 + i];
    const bool visible = row_lse != neg_infinity() &&
                         key_visible(mask.q_pos[q], mask.q_seg[q], mask.k_pos[k], mask.k_seg[k], mask.causal != 0);
    scores[e] = visible ? expf(scores[e] - row_lse) : 0.f;
  }
}

// dS = P (dP - delta) scale, written over dP.
__global__ void backward_dscores_kernel(const float* probs, float* dprobs, ChunkDims dims, int64_t n_elements,
                                        const float* delta, float scale) {
  for (int64_t e = global_thread_x(); e < n_elements; e += grid_threads_x()) {
    const int64_t rho = e / dims.cols;
    const int64_t b = rho / (static_cast<int64_t>(dims.heads) * dims.rows);
    const int64_t h = (rho / dims.rows) % dims.heads, i = rho % dims.rows;
    const float d = delta[(b * dims.heads + h) * dims.n_q + dims.q0 + i];
    dprobs[e] = probs[e] * (dprobs[e] - d) * scale;
  }
}

// delta[b, h, i] = sum_d out[b, i, h, d] dout[b, i, h, d]; warp per row.
__global__ void row_dot_kernel(const float* out, const float* dout, float* delta, int batch, int n_q, int heads,
                               int head_dim) {
  const int warp = static_cast<int>(threadIdx.x) / warp_size(), lane = lane_id();
  const int64_t n_rows = static_cast<int64_t>(batch) * heads * n_q;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp; row < n_rows;
       row += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t b = row / (static_cast<int64_t>(heads) * n_q), h = (row / n_q) % heads, i = row % n_q;
    const int64_t base = ((b * n_q + i) * heads + h) * head_dim;
    float sum = 0.f;
    for (int dd = lane; dd < head_dim; dd += warp_size()) sum += out[base + dd] * dout[base + dd];
    sum = warp_sum(sum);
    if (lane == 0) delta[row] = sum;
  }
}

// (out_a, lse_a) <- merge with (out_b, lse_b); warp per row.
__global__ void merge_kernel(float* out_a, float* lse_a, const float* out_b, const float* lse_b, int batch, int n_q,
                             int heads, int head_dim) {
  const int warp = static_cast<int>(threadIdx.x) / warp_size(), lane = lane_id();
  const int64_t n_rows = static_cast<int64_t>(batch) * heads * n_q;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp; row < n_rows;
       row += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const float la = lse_a[row], lb = lse_b[row];
    const float l = merged_lse(la, lb);
    if (l == neg_infinity()) continue;  // neither side saw a key
    const float wa = la == neg_infinity() ? 0.f : expf(la - l);
    const float wb = lb == neg_infinity() ? 0.f : expf(lb - l);
    const int64_t b = row / (static_cast<int64_t>(heads) * n_q), h = (row / n_q) % heads, i = row % n_q;
    const int64_t base = ((b * n_q + i) * heads + h) * head_dim;
    for (int dd = lane; dd < head_dim; dd += warp_size())
      out_a[base + dd] = wa * out_a[base + dd] + wb * out_b[base + dd];
    sync_warp();
    if (lane == 0) lse_a[row] = l;
  }
}

unsigned rows_grid(int64_t n_rows) { return grid_for(n_rows, kRowsPerBlock); }

// ---- host side ----

struct Chunks {
  int block_q, block_k;
};

// The tiling hint, clipped to the problem and shrunk until batch * heads * block_q * block_k
// fits the score scratch cap.
Chunks choose_chunks(const AttnShape& s, const AttnTiling& t) {
  constexpr int64_t kScoreCap = int64_t(1) << 26;
  Chunks c{t.block_q < s.n_q ? t.block_q : s.n_q, t.block_k < s.n_k ? t.block_k : s.n_k};
  const int64_t bh = static_cast<int64_t>(s.batch) * s.heads;
  while (bh * c.block_q * c.block_k > kScoreCap && c.block_q > 16) c.block_q = (c.block_q + 1) / 2;
  while (bh * c.block_q * c.block_k > kScoreCap && c.block_k > 16) c.block_k = (c.block_k + 1) / 2;
  RW_CHECK(bh * c.block_q * c.block_k <= kScoreCap,
           "attention: batch * heads (" + std::to_string(bh) + ") too large for the reference path's scratch");
  return c;
}

// Everything the GEMM descriptors need about the tensors of one call (fp32 after conversion).
struct Tensors {
  const float* q;
  const float* k;
  const float* v;
  const float* dout;
};

// The strided-batched GEMMs over kv heads for query-head group member g of batch row b.
// Scores / probabilities chunk layout: [batch, heads, rows, cols]; accumulator [batch, heads, rows, d].
struct ChunkGemms {
  const AttnShape& s;
  const ChunkDims& dims;
  int group;
  int64_t q_offset(int b, int g) const {
    return ((static_cast<int64_t>(b) * s.n_q + dims.q0) * s.heads + g) * s.head_dim;
  }
  int64_t kv_offset(int b) const { return ((static_cast<int64_t>(b) * s.n_k + dims.k0) * s.kv_heads) * s.head_dim; }
  int64_t score_offset(int b, int g) const {
    return (static_cast<int64_t>(b) * s.heads + g) * dims.rows * static_cast<int64_t>(dims.cols);
  }
  int64_t score_stride() const { return static_cast<int64_t>(group) * dims.rows * dims.cols; }
  int64_t acc_offset(int b, int g) const { return (static_cast<int64_t>(b) * s.heads + g) * dims.rows * s.head_dim; }
  int64_t acc_stride() const { return static_cast<int64_t>(group) * dims.rows * s.head_dim; }
  int64_t q_ld() const { return static_cast<int64_t>(s.heads) * s.head_dim; }
  int64_t kv_ld() const { return static_cast<int64_t>(s.kv_heads) * s.head_dim; }
  int64_t q_stride() const { return static_cast<int64_t>(group) * s.head_dim; }

  // C[rows, cols] (scores) = alpha * X[rows, d] Y[cols, d]^T, X a query-side tensor, Y key-side.
  GemmDesc scores(const float* x, const float* y, float* c, int b, int g, float alpha) const {
    GemmDesc d;
    d.trans_b = true;
    d.m = dims.rows;
    d.n = dims.cols;
    d.k = s.head_dim;
    d.alpha = alpha;
    d.a = x + q_offset(b, g);
    d.lda = q_ld();
    d.stride_a = q_stride();
    d.b = y + kv_offset(b);
    d.ldb = kv_ld();
    d.stride_b = s.head_dim;
    d.c = c + score_offset(b, g);
    d.ldc = dims.cols;
    d.stride_c = score_stride();
    d.batch = s.kv_heads;
    return d;
  }
  // Query-side C[rows, d] (+)= P[rows, cols] Y[cols, d].
  GemmDesc rows_times_keys(const float* p, const float* y, float* c, int64_t c_offset, int64_t ldc, int64_t stride_c,
                           int b, int g, float beta) const {
    GemmDesc d;
    d.m = dims.rows;
    d.n = s.head_dim;
    d.k = dims.cols;
    d.beta = beta;
    d.a = p + score_offset(b, g);
    d.lda = dims.cols;
    d.stride_a = score_stride();
    d.b = y + kv_offset(b);
    d.ldb = kv_ld();
    d.stride_b = s.head_dim;
    d.c = c + c_offset;
    d.ldc = ldc;
    d.stride_c = stride_c;
    d.batch = s.kv_heads;
    return d;
  }
  // Key-side C[cols, d] += P[rows, cols]^T X[rows, d] (dV, dK).
  GemmDesc keys_times_rows(const float* p, const float* x, float* c, int b, int g) const {
    GemmDesc d;
    d.trans_a = true;
    d.m = dims.cols;
    d.n = s.head_dim;
    d.k = dims.rows;
    d.beta = 1.f;
    d.a = p + score_offset(b, g);
    d.lda = dims.cols;
    d.stride_a = score_stride();
    d.b = x + q_offset(b, g);
    d.ldb = q_ld();
    d.stride_b = q_stride();
    d.c = c + kv_offset(b);
    d.ldc = kv_ld();
    d.stride_c = s.head_dim;
    d.batch = s.kv_heads;
    return d;
  }
};

const float* as_f32(const float* p, DType dtype, int64_t n, float* copy, const LaunchContext& ctx) {
  if (dtype == DType::f32) return p;
  convert_to_f32(p, dtype, copy, n, ctx);
  return copy;
}

MaskPtrs mask_ptrs(const AttnMaskArgs& m) { return MaskPtrs{m.q_pos, m.q_seg, m.k_pos, m.k_seg, m.causal ? 1 : 0}; }

}  // namespace

void run(AttnFwdStepArgs& a, const LaunchContext& ctx) {
  const AttnShape& s = a.shape;
  if (s.batch == 0 || s.n_q == 0 || s.n_k == 0) return;
  if (attn_fwd_fused_applies(a, ctx)) return attn_fwd_fused(a, ctx);
  const Chunks ch = choose_chunks(s, a.tiling);
  const int group = s.heads / s.kv_heads;
  const int64_t bh = static_cast<int64_t>(s.batch) * s.heads;
  const int64_t q_elems = static_cast<int64_t>(detail::attn_q_elems(s)),
                kv_elems = static_cast<int64_t>(detail::attn_kv_elems(s));
  const bool convert = a.dtype != DType::f32;
  WorkspacePlan plan;
  const std::size_t scores_at = plan.add(static_cast<std::size_t>(bh * ch.block_q * ch.block_k) * 4);
  const std::size_t acc_at = plan.add(static_cast<std::size_t>(bh * ch.block_q * s.head_dim) * 4);
  const std::size_t m_at = plan.add(static_cast<std::size_t>(bh * ch.block_q) * 4);
  const std::size_t l_at = plan.add(static_cast<std::size_t>(bh * ch.block_q) * 4);
  const std::size_t q_at = convert ? plan.add(static_cast<std::size_t>(q_elems) * 4) : 0;
  const std::size_t k_at = convert ? plan.add(static_cast<std::size_t>(kv_elems) * 4) : 0;
  const std::size_t v_at = convert ? plan.add(static_cast<std::size_t>(kv_elems) * 4) : 0;
  char* ws = static_cast<char*>(ctx.workspace->get(plan.total()));
  float* scores = reinterpret_cast<float*>(ws + scores_at);
  float* acc = reinterpret_cast<float*>(ws + acc_at);
  float* m_run = reinterpret_cast<float*>(ws + m_at);
  float* l_run = reinterpret_cast<float*>(ws + l_at);
  const Tensors t{as_f32(a.q, a.dtype, q_elems, reinterpret_cast<float*>(ws + q_at), ctx),
                  as_f32(a.k, a.dtype, kv_elems, reinterpret_cast<float*>(ws + k_at), ctx),
                  as_f32(a.v, a.dtype, kv_elems, reinterpret_cast<float*>(ws + v_at), ctx), nullptr};
  const MaskPtrs mask = mask_ptrs(a.mask);

  for (int q0 = 0; q0 < s.n_q; q0 += ch.block_q) {
    const int rows = s.n_q - q0 < ch.block_q ? s.n_q - q0 : ch.block_q;
    const int64_t n_rows = bh * rows;
    fill_f32(acc, n_rows * s.head_dim, 0.f, ctx);
    fill_f32(m_run, n_rows, neg_infinity(), ctx);
    fill_f32(l_run, n_rows, 0.f, ctx);
    ChunkDims dims{s.heads, s.kv_heads, s.head_dim, s.n_q, s.n_k, q0, rows, 0, 0};
    for (int k0 = 0; k0 < s.n_k; k0 += ch.block_k) {
      dims.k0 = k0;
      dims.cols = s.n_k - k0 < ch.block_k ? s.n_k - k0 : ch.block_k;
      const ChunkGemms gemms{s, dims, group};
      for (int b = 0; b < s.batch; ++b)
        for (int g = 0; g < group; ++g) gemm(gemms.scores(t.q, t.k, scores, b, g, a.scale), ctx);
      launch_kernel(&softmax_update_kernel, dim3(rows_grid(n_rows)), dim3(kThreads), 0, ctx, scores, dims, mask, n_rows,
                    m_run, l_run, acc);
      for (int b = 0; b < s.batch; ++b)
        for (int g = 0; g < group; ++g)
          gemm(gemms.rows_times_keys(scores, t.v, acc, gemms.acc_offset(b, g), s.head_dim, gemms.acc_stride(), b, g,
                                     1.f),
               ctx);
    }
    launch_kernel(&finish_kernel, dim3(rows_grid(n_rows)), dim3(kThreads), 0, ctx, a.out, a.lse, dims, n_rows,
                  static_cast<const float*>(m_run), static_cast<const float*>(l_run), static_cast<const float*>(acc));
  }
}

void run(AttnBwdStepArgs& a, const LaunchContext& ctx) {
  const AttnShape& s = a.shape;
  if (s.batch == 0 || s.n_q == 0 || s.n_k == 0) return;
  if (attn_bwd_fused_applies(a, ctx)) return attn_bwd_fused(a, ctx);
  const Chunks ch = choose_chunks(s, a.tiling);
  const int group = s.heads / s.kv_heads;
  const int64_t bh = static_cast<int64_t>(s.batch) * s.heads;
  const int64_t q_elems = static_cast<int64_t>(detail::attn_q_elems(s)),
                kv_elems = static_cast<int64_t>(detail::attn_kv_elems(s));
  const bool convert = a.dtype != DType::f32;
  WorkspacePlan plan;
  const std::size_t p_at = plan.add(static_cast<std::size_t>(bh * ch.block_q * ch.block_k) * 4);
  const std::size_t dp_at = plan.add(static_cast<std::size_t>(bh * ch.block_q * ch.block_k) * 4);
  const std::size_t q_at = convert ? plan.add(static_cast<std::size_t>(q_elems) * 4) : 0;
  const std::size_t k_at = convert ? plan.add(static_cast<std::size_t>(kv_elems) * 4) : 0;
  const std::size_t v_at = convert ? plan.add(static_cast<std::size_t>(kv_elems) * 4) : 0;
  const std::size_t do_at = convert ? plan.add(static_cast<std::size_t>(q_elems) * 4) : 0;
  char* ws = static_cast<char*>(ctx.workspace->get(plan.total()));
  float* probs = reinterpret_cast<float*>(ws + p_at);
  float* dprobs = reinterpret_cast<float*>(ws + dp_at);
  const Tensors t{as_f32(a.q, a.dtype, q_elems, reinterpret_cast<float*>(ws + q_at), ctx),
                  as_f32(a.k, a.dtype, kv_elems, reinterpret_cast<float*>(ws + k_at), ctx),
                  as_f32(a.v, a.dtype, kv_elems, reinterpret_cast<float*>(ws + v_at), ctx),
                  as_f32(a.dout, a.dtype, q_elems, reinterpret_cast<float*>(ws + do_at), ctx)};
  const MaskPtrs mask = mask_ptrs(a.mask);

  for (int q0 = 0; q0 < s.n_q; q0 += ch.block_q) {
    const int rows = s.n_q - q0 < ch.block_q ? s.n_q - q0 : ch.block_q;
    for (int k0 = 0; k0 < s.n_k; k0 += ch.block_k) {
      const int cols = s.n_k - k0 < ch.block_k ? s.n_k - k0 : ch.block_k;
      const ChunkDims dims{s.heads, s.kv_heads, s.head_dim, s.n_q, s.n_k, q0, rows, k0, cols};
      const ChunkGemms gemms{s, dims, group};
      const int64_t n_elements = bh * rows * cols;
      for (int b = 0; b < s.batch; ++b)
        for (int g = 0; g < group; ++g) gemm(gemms.scores(t.q, t.k, probs, b, g, a.scale), ctx);
      launch_kernel(&backward_probs_kernel, dim3(grid_for(n_elements, kThreads * 4)), dim3(kThreads), 0, ctx, probs,
                    dims, mask, n_elements, a.lse);
      // dV += P^T dO (group members one after another: they write the same dV rows).
      for (int b = 0; b < s.batch; ++b)
        for (int g = 0; g < group; ++g) gemm(gemms.keys_times_rows(probs, t.dout, a.dv, b, g), ctx);
      // dP = dO V^T
      for (int b = 0; b < s.batch; ++b)
        for (int g = 0; g < group; ++g) gemm(gemms.scores(t.dout, t.v, dprobs, b, g, 1.f), ctx);
      launch_kernel(&backward_dscores_kernel, dim3(grid_for(n_elements, kThreads * 4)), dim3(kThreads), 0, ctx,
                    static_cast<const float*>(probs), dprobs, dims, n_elements, a.delta, a.scale);
      // dQ += dS K;  dK += dS^T Q
      for (int b = 0; b < s.batch; ++b)
        for (int g = 0; g < group; ++g)
          gemm(
              gemms.rows_times_keys(dprobs, t.k, a.dq, gemms.q_offset(b, g), gemms.q_ld(), gemms.q_stride(), b, g, 1.f),
              ctx);
      for (int b = 0; b < s.batch; ++b)
        for (int g = 0; g < group; ++g) gemm(gemms.keys_times_rows(dprobs, t.q, a.dk, b, g), ctx);
    }
  }
}

void run(AttnRowDotArgs& a, const LaunchContext& ctx) {
  const AttnShape& s = a.shape;
  const int64_t n_rows = static_cast<int64_t>(s.batch) * s.heads * s.n_q;
  if (n_rows == 0) return;
  launch_kernel(&row_dot_kernel, dim3(rows_grid(n_rows)), dim3(kThreads), 0, ctx, a.out, a.dout, a.delta, s.batch,
                s.n_q, s.heads, s.head_dim);
}

void run(AttnMergeArgs& a, const LaunchContext& ctx) {
  const AttnShape& s = a.shape;
  const int64_t n_rows = static_cast<int64_t>(s.batch) * s.heads * s.n_q;
  if (n_rows == 0) return;
  launch_kernel(&merge_kernel, dim3(rows_grid(n_rows)), dim3(kThreads), 0, ctx, a.out_a, a.lse_a, a.out_b, a.lse_b,
                s.batch, s.n_q, s.heads, s.head_dim);
}

}  // namespace rw::device::gpu::RW_GPU_NS
