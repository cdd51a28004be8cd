// attention_fused.cu: a fused FlashAttention-2-style forward step for bf16 q/k/v, head_dim 64 or
// 128, on the matrix cores through mma.h's tile wrapper (mma.sync m16n8k16 on NVIDIA, MFMA
// 16x16x16 on AMD, the documented layouts under the emulation). Opt-in (LaunchContext::attn_fused,
// RINGWORLD_GPU_ATTN_FWD=fused): the reference path (attention.cu) stays the default and the
// reference this kernel is held to.
//
// One block per (64 query rows, batch x head): 4 warps of 16 rows each (one tile row of M = 16).
//   - Q tile to shared memory, then into registers as A fragments (all of head_dim);
//   - per tile of 64 keys: K and V to shared memory; the tile classified by the block summaries
//     of device/attention_mask.h (skipped wholly masked; no per-element mask when wholly visible);
//     S = Q K^T by tile ops (fp32 accumulation); scale and mask; the online softmax in registers
//     (row max and sum across the lanes that share a row: mma.h's c_row_lanes); the O
//     accumulator rescaled; P rounded to bf16 into the warp's part of shared memory and reloaded
//     as A fragments; O += P V by tile ops;
//   - at the end O / l and lse = m + log l merged into the running (out, lse) of the ring step
//     (rows that saw no visible key left alone).
// Precision: scores, softmax statistics, O and the merge in fp32; P in bf16 for P V (FlashAttention's
// choice: the fast path's error is that of a computation with bf16 probabilities, which is what
// its test holds it to). Not yet tuned (no ldmatrix, no cp.async double buffering, P through
// shared memory on both vendors).
#include <cmath>

#include "device/attention_mask.h"
#include "device/cuda/kernels/common.cuh"
#include "device/cuda/mma.h"

namespace rw::device::gpu::RW_GPU_NS {
namespace {

constexpr int kFusedWarps = 4;
constexpr int kFusedRows = 16 * kFusedWarps;  // query rows per block
constexpr int kFusedKeys = 64;                // keys per K/V tile
constexpr int kFusedPad = 8;                  // bf16 of padding per shared row (bank spread)

template <int D>
struct FusedLayout {
  static constexpr int kStride = D + kFusedPad;            // Q, K, V rows in shared memory
  static constexpr int kPStride = kFusedKeys + kFusedPad;  // P rows
  static constexpr int kQElems = kFusedRows * kStride;
  static constexpr int kPElems = kFusedWarps * 16 * kPStride;
  static constexpr int kQPElems = kQElems > kPElems ? kQElems : kPElems;  // Q, then P, share it
  static constexpr int kKVElems = kFusedKeys * kStride;
  static constexpr std::size_t kSummaryOffset = sizeof(bf16_t) * (kQPElems + 2 * kKVElems);
  static constexpr std::size_t kKeyMaskOffset = kSummaryOffset + 8 * sizeof(int32_t);
  static constexpr std::size_t kSharedBytes = kKeyMaskOffset + 2 * kFusedKeys * sizeof(int32_t);
};

struct FusedParams {
  const bf16_t* q;
  const bf16_t* k;
  const bf16_t* v;
  float* out;
  float* lse;
  const int32_t* q_pos;
  const int32_t* q_seg;
  const int32_t* k_pos;
  const int32_t* k_seg;
  int causal;
  int n_q, n_k, heads, kv_heads;
  float scale;
};

__device__ __forceinline__ float fused_merged_lse(float a, float b) {
  if (a == neg_infinity()) return b;
  if (b == neg_infinity()) return a;
  const float hi = a > b ? a : b;
  return hi + log1pf(expf(-fabsf(a - b)));
}

// Reduces v over the lanes that share a row of C (lane ^ m, m < c_row_lanes()).
template <class Op>
__device__ __forceinline__ float row_reduce(float v, Op op) {
  for (int m = 1; m < MmaTile::c_row_lanes(); m <<= 1) v = op(v, shfl_xor(v, m));
  return v;
}

template <int D>
__global__ void __launch_bounds__(kFusedWarps * 64) attn_fwd_fused_kernel(FusedParams p) {
  using T = MmaTile;
  using L = FusedLayout<D>;
  constexpr int kSlots = T::c_row_slots();
  constexpr int kScoreTiles = kFusedKeys / T::N;  // n-tiles of S per warp
  constexpr int kOutTiles = D / T::N;             // n-tiles of O per warp
  constexpr int kQSteps = D / T::K;               // k-steps of Q K^T
  constexpr int kPSteps = kFusedKeys / T::K;      // k-steps of P V

  unsigned char* smem = dynamic_shared<unsigned char>();
  bf16_t* s_q = reinterpret_cast<bf16_t*>(smem);  // Q tile, later every warp's P
  bf16_t* s_k = s_q + L::kQPElems;
  bf16_t* s_v = s_k + L::kKVElems;
  int32_t* s_summary = reinterpret_cast<int32_t*>(smem + L::kSummaryOffset);  // q: 0..3, k: 4..7
  int32_t* s_kpos = reinterpret_cast<int32_t*>(smem + L::kKeyMaskOffset);     // the tile's key positions
  int32_t* s_kseg = s_kpos + kFusedKeys;                                      // and segment ids

  const int warp = static_cast<int>(threadIdx.x) / warp_size(), lane = lane_id();
  const int n_threads = static_cast<int>(blockDim.x);
  const int64_t b = blockIdx.y / p.heads, h = blockIdx.y % p.heads;
  const int64_t kvh = h / (p.heads / p.kv_heads);
  const int q0 = static_cast<int>(blockIdx.x) * kFusedRows;
  const int q_rows = p.n_q - q0 < kFusedRows ? p.n_q - q0 : kFusedRows;
  const bf16_t zero{};

  for (int e = static_cast<int>(threadIdx.x); e < kFusedRows * D; e += n_threads) {
    const int r = e / D, c = e % D;
    s_q[r * L::kStride + c] = r < q_rows ? p.q[((b * p.n_q + q0 + r) * p.heads + h) * D + c] : zero;
  }
  if (threadIdx.x == 0) {
    const BlockSummary s = summarize_block(p.q_pos + b * p.n_q + q0, p.q_seg + b * p.n_q + q0, q_rows);
    s_summary[0] = s.pos_min;
    s_summary[1] = s.pos_max;
    s_summary[2] = s.seg_min;
    s_summary[3] = s.seg_max;
  }
  __syncthreads();
  T::A q_frag[kQSteps];
  for (int step = 0; step < kQSteps; ++step)
    for (int i = 0; i < T::kA; ++i)
      q_frag[step].x[i] = s_q[(warp * 16 + T::a_row(lane, i)) * L::kStride + step * T::K + T::a_col(lane, i)];
  const BlockSummary q_summary{s_summary[0], s_summary[1], s_summary[2], s_summary[3]};

  // This lane's query rows (per row slot) and their masks.
  int row_of_slot[kSlots];
  int32_t qpos_of_slot[kSlots], qseg_of_slot[kSlots];
  for (int i = 0; i < T::kC; ++i) row_of_slot[T::c_row_slot(i)] = warp * 16 + T::c_row(lane, i);
  for (int s = 0; s < kSlots; ++s) {
    const bool valid = row_of_slot[s] < q_rows;
    qpos_of_slot[s] = valid ? p.q_pos[b * p.n_q + q0 + row_of_slot[s]] : 0;
    qseg_of_slot[s] = valid ? p.q_seg[b * p.n_q + q0 + row_of_slot[s]] : 0;
  }
  float m[kSlots], l[kSlots];
  for (int s = 0; s < kSlots; ++s) {
    m[s] = neg_infinity();
    l[s] = 0.f;
  }
  T::C o[kOutTiles];
  for (int t = 0; t < kOutTiles; ++t)
    for (int i = 0; i < T::kC; ++i) o[t].x[i] = 0.f;
  __syncthreads();  // every warp has its Q fragments: the Q region now holds P
  bf16_t* s_p = s_q + warp * 16 * L::kPStride;

  for (int k0 = 0; k0 < p.n_k; k0 += kFusedKeys) {
    const int k_rows = p.n_k - k0 < kFusedKeys ? p.n_k - k0 : kFusedKeys;
    for (int e = static_cast<int>(threadIdx.x); e < kFusedKeys * D; e += n_threads) {
      const int r = e / D, c = e % D;
      const int64_t src = ((b * p.n_k + k0 + r) * p.kv_heads + kvh) * D + c;
      s_k[r * L::kStride + c] = r < k_rows ? p.k[src] : zero;
      s_v[r * L::kStride + c] = r < k_rows ? p.v[src] : zero;
    }
    for (int e = static_cast<int>(threadIdx.x); e < k_rows; e += n_threads) {
      s_kpos[e] = p.k_pos[b * p.n_k + k0 + e];
      s_kseg[e] = p.k_seg[b * p.n_k + k0 + e];
    }
    if (threadIdx.x == 0) {
      const BlockSummary s = summarize_block(p.k_pos + b * p.n_k + k0, p.k_seg + b * p.n_k + k0, k_rows);
      s_summary[4] = s.pos_min;
      s_summary[5] = s.pos_max;
      s_summary[6] = s.seg_min;
      s_summary[7] = s.seg_max;
    }
    __syncthreads();
    const BlockSummary k_summary{s_summary[4], s_summary[5], s_summary[6], s_summary[7]};
    const TileKind kind = classify_tile(q_summary, k_summary, p.causal != 0);
    if (kind != TileKind::skip) {  // the same for the whole block
      T::C s[kScoreTiles];
      for (int t = 0; t < kScoreTiles; ++t) {
        for (int i = 0; i < T::kC; ++i) s[t].x[i] = 0.f;
        for (int step = 0; step < kQSteps; ++step) {
          T::B kf;
          for (int i = 0; i < T::kB; ++i)
            kf.x[i] = s_k[(t * T::N + T::b_col(lane, i)) * L::kStride + step * T::K + T::b_row(lane, i)];
          T::mma(s[t], q_frag[step], kf);
        }
      }
      float tile_max[kSlots];
      for (int r = 0; r < kSlots; ++r) tile_max[r] = neg_infinity();
      for (int t = 0; t < kScoreTiles; ++t)
        for (int i = 0; i < T::kC; ++i) {
          const int slot = T::c_row_slot(i), key = t * T::N + T::c_col(lane, i);
          bool visible = key < k_rows && row_of_slot[slot] < q_rows;
          if (visible && kind == TileKind::partial)
            visible = key_visible(qpos_of_slot[slot], qseg_of_slot[slot], s_kpos[key], s_kseg[key], p.causal != 0);
          const float value = visible ? s[t].x[i] * p.scale : neg_infinity();
          s[t].x[i] = value;
          tile_max[slot] = fmaxf(tile_max[slot], value);
        }
      float alpha[kSlots], m_new[kSlots], row_sum[kSlots];
      for (int r = 0; r < kSlots; ++r) {
        tile_max[r] = row_reduce(tile_max[r], [](float x, float y) { return fmaxf(x, y); });
        m_new[r] = fmaxf(m[r], tile_max[r]);
        alpha[r] = m[r] == neg_infinity() ? 0.f : expf(m[r] - m_new[r]);
        row_sum[r] = 0.f;
      }
      for (int t = 0; t < kScoreTiles; ++t)
        for (int i = 0; i < T::kC; ++i) {
          const int slot = T::c_row_slot(i);
          const float value = s[t].x[i];
          const float prob = value == neg_infinity() ? 0.f : expf(value - m_new[slot]);
          row_sum[slot] += prob;
          s_p[T::c_row(lane, i) * L::kPStride + t * T::N + T::c_col(lane, i)] = from_float<bf16_t>(prob);
        }
      for (int r = 0; r < kSlots; ++r) {
        row_sum[r] = row_reduce(row_sum[r], [](float x, float y) { return x + y; });
        l[r] = alpha[r] * l[r] + row_sum[r];
        m[r] = m_new[r];
      }
      for (int t = 0; t < kOutTiles; ++t)
        for (int i = 0; i < T::kC; ++i) o[t].x[i] *= alpha[T::c_row_slot(i)];
      sync_warp();  // the warp's P is in shared memory
      for (int step = 0; step < kPSteps; ++step) {
        T::A pf;
        for (int i = 0; i < T::kA; ++i)
          pf.x[i] = s_p[T::a_row(lane, i) * L::kPStride + step * T::K + T::a_col(lane, i)];
        for (int t = 0; t < kOutTiles; ++t) {
          T::B vf;
          for (int i = 0; i < T::kB; ++i)
            vf.x[i] = s_v[(step * T::K + T::b_row(lane, i)) * L::kStride + t * T::N + T::b_col(lane, i)];
          T::mma(o[t], pf, vf);
        }
      }
      sync_warp();  // P read before the next tile writes it
    }
    __syncthreads();  // K and V read before the next tile's load
  }

  // Merge (O / l, m + log l) into the running (out, lse); rows of this warp only.
  float new_lse[kSlots], w_old[kSlots], w_new[kSlots];
  for (int r = 0; r < kSlots; ++r) {
    new_lse[r] = neg_infinity();
    w_old[r] = w_new[r] = 0.f;
    if (!(l[r] > 0.f) || row_of_slot[r] >= q_rows) continue;
    const float step_lse = m[r] + logf(l[r]);
    const float old_lse = p.lse[(b * p.heads + h) * p.n_q + q0 + row_of_slot[r]];
    new_lse[r] = fused_merged_lse(old_lse, step_lse);
    w_old[r] = old_lse == neg_infinity() ? 0.f : expf(old_lse - new_lse[r]);
    w_new[r] = expf(step_lse - new_lse[r]) / l[r];
  }
  for (int t = 0; t < kOutTiles; ++t)
    for (int i = 0; i < T::kC; ++i) {
      const int slot = T::c_row_slot(i);
      if (!(l[slot] > 0.f) || row_of_slot[slot] >= q_rows) continue;
      float* dst = p.out + ((b * p.n_q + q0 + row_of_slot[slot]) * p.heads + h) * D + t * T::N + T::c_col(lane, i);
      *dst = w_old[slot] * *dst + w_new[slot] * o[t].x[i];
    }
  sync_warp();  // every lane has read lse before one lane per row writes it
  for (int i = 0; i < T::kC; ++i) {
    const int slot = T::c_row_slot(i);
    if (T::c_col(lane, i) != 0 || !(l[slot] > 0.f) || row_of_slot[slot] >= q_rows) continue;
    p.lse[(b * p.heads + h) * p.n_q + q0 + row_of_slot[slot]] = new_lse[slot];
  }
}

template <int D>
void launch_fused(const AttnFwdStepArgs& a, const LaunchContext& ctx) {
  const AttnShape& s = a.shape;
  FusedParams p{reinterpret_cast<const bf16_t*>(a.q),
                reinterpret_cast<const bf16_t*>(a.k),
                reinterpret_cast<const bf16_t*>(a.v),
                a.out,
                a.lse,
                a.mask.q_pos,
                a.mask.q_seg,
                a.mask.k_pos,
                a.mask.k_seg,
                a.mask.causal ? 1 : 0,
                s.n_q,
                s.n_k,
                s.heads,
                s.kv_heads,
                a.scale};
  const int64_t row_blocks = (s.n_q + kFusedRows - 1) / kFusedRows, heads = static_cast<int64_t>(s.batch) * s.heads;
  RW_CHECK(heads <= 65535 && row_blocks < (int64_t(1) << 31), "attn_fwd_step (fused): batch x heads above 65535");
  launch_kernel(&attn_fwd_fused_kernel<D>, dim3(static_cast<unsigned>(row_blocks), static_cast<unsigned>(heads)),
                dim3(kFusedWarps * warp_size()), FusedLayout<D>::kSharedBytes, ctx, p);
}

}  // namespace

bool attn_fwd_fused_applies(const AttnFwdStepArgs& a, const LaunchContext& ctx) {
  return ctx.attn_fused && a.dtype == DType::bf16 && (a.shape.head_dim == 64 || a.shape.head_dim == 128);
}

void attn_fwd_fused(const AttnFwdStepArgs& a, const LaunchContext& ctx) {
  if (a.shape.batch == 0 || a.shape.n_q == 0 || a.shape.n_k == 0) return;
  if (a.shape.head_dim == 64)
    launch_fused<64>(a, ctx);
  else
    launch_fused<128>(a, ctx);
}

}  // namespace rw::device::gpu::RW_GPU_NS
