// attention_fused_bwd.cu: the fused FlashAttention-2-style backward step for bf16 q/k/v/dout,
// head_dim 64 or 128, on the matrix cores through mma.h's tile wrapper. Opt-in
// (LaunchContext::attn_bwd_fused, RINGWORLD_GPU_ATTN_BWD=fused): the reference path
// (attention.cu) stays the default and the reference this kernel is held to.
//
// Two kernels, one after the other on the stream, neither with atomics (the project's rule:
// deterministic reductions):
//   dK/dV  a block per (64 keys, batch x kv head): 4 warps, each owning 16 keys, their dK and
//          dV rows accumulated in fp32 tile-op registers; the block walks the query heads of
//          the GQA group in order and, for each, the query tiles in order: P^T recomputed from
//          the final lse, dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta) scale, dK +=
//          dS^T Q. At the end the block adds its dK/dV into the ring's running fp32 dK/dV
//          (each element by one thread: the heads of a group add in a fixed order, in registers).
//   dQ     a block per (64 query rows, batch x head): 4 warps of 16 rows, dQ in fp32 registers;
//          the block walks the key tiles in order: S and P again, dP = dO V^T, dS, dQ += dS K.
// Why a second pass for dQ (S and dP computed twice: 7 tile products per score instead of 5):
// FlashAttention-2 adds dQ by floating-point atomics from every key block, which the project
// rules out; per-key-tile partial dQ buffers reduced in a fixed order would cost
// (n_k / 64) x the size of dQ in workspace and a read of all of it. The second pass needs no
// memory beyond dQ and its order is fixed by construction.
//
// Both kernels compute products in the orientation that puts their owned rows on the tile's M
// side (the dK/dV kernel works with S^T: keys x queries), so no row statistic is needed: P is
// exp(scale s - lse) with lse and delta per query read from shared memory (dK/dV) or registers
// (dQ). Tiles are classified by device/attention_mask.h like the forward's (wholly masked ones
// skipped before their Q/dO or K/V are loaded; wholly visible ones not masked element by
// element). A query row with lse = -inf (it saw no key) has P = 0 and so no gradient.
//
// Precision: S, P, dP and the accumulators in fp32; P and dS rounded to bf16 as the A operands
// of dV += P^T dO, dK += dS^T Q and dQ += dS K (FlashAttention's choice; dS itself is formed
// from the fp32 P). The test holds it to twice the error of the same computation with bf16 P
// and dS.
//
// Tiles: owned 64 rows; streamed tiles 64 rows at d 64 and 32 at d 128, so that K, V (or Q,
// dO), the streamed pair and every warp's P/dS fit 64 KB of LDS (gfx90a): 57.9 KB at d 128,
// 47.1 KB at d 64. Not yet tuned (no ldmatrix, no cp.async double buffering), never run on a GPU.
#include <cmath>

#include "device/attention_mask.h"
#include "device/cuda/kernels/common.cuh"
#include "device/cuda/mma.h"

namespace rw::device::gpu::RW_GPU_NS {
namespace {

constexpr int kBwdWarps = 4;
constexpr int kBwdOwnRows = 16 * kBwdWarps;  // keys (dK/dV kernel) or query rows (dQ kernel) per block
constexpr int kBwdPad = 8;                   // bf16 of padding per shared row (bank spread)

template <int D>
struct BwdLayout {
  static constexpr int kStream = D == 128 ? 32 : 64;  // rows of the streamed tiles (queries or keys)
  static constexpr int kStride = D + kBwdPad;         // rows of the four data tiles
  static constexpr int kPStride = kStream + kBwdPad;  // rows of a warp's P / dS
  static constexpr int kOwnElems = kBwdOwnRows * kStride;
  static constexpr int kStreamElems = kStream * kStride;
  static constexpr int kPElems = kBwdWarps * 16 * kPStride;
  static constexpr std::size_t kInfoOffset =
      (sizeof(bf16_t) * (2 * kOwnElems + 2 * kStreamElems + kPElems) + 15) / 16 * 16;
  // After the bf16 tiles: the streamed rows' positions, segment ids (int32), lse and delta
  // (float; the dK/dV kernel's queries), then the two block summaries (q: 0..3, k: 4..7).
  static constexpr std::size_t kSummaryOffset = kInfoOffset + 4 * kStream * sizeof(int32_t);
  static constexpr std::size_t kSharedBytes = kSummaryOffset + 8 * sizeof(int32_t);
  static_assert(kSharedBytes <= 64 * 1024, "the fused backward's tiles must fit 64 KB of LDS");
};

struct BwdParams {
  const bf16_t* q;
  const bf16_t* k;
  const bf16_t* v;
  const bf16_t* dout;
  const float* lse;
  const float* delta;
  float* dq;
  float* dk;
  float* dv;
  const int32_t* q_pos;
  const int32_t* q_seg;
  const int32_t* k_pos;
  const int32_t* k_seg;
  int causal;
  int n_q, n_k, heads, kv_heads;
  float scale;
};

// Rows [row0, row0 + n_rows) of a [.., tokens, heads, D] bf16 tensor (head `head`) into a padded
// shared tile of `tile_rows` rows; rows past n_rows are zero.
template <int D>
__device__ __forceinline__ void load_tile(bf16_t* dst, const bf16_t* src, int64_t token0, int n_rows, int tile_rows,
                                          int64_t heads, int64_t head) {
  const bf16_t zero{};
  for (int e = static_cast<int>(threadIdx.x); e < tile_rows * D; e += static_cast<int>(blockDim.x)) {
    const int r = e / D, c = e % D;
    dst[r * BwdLayout<D>::kStride + c] = r < n_rows ? src[((token0 + r) * heads + head) * D + c] : zero;
  }
}

__device__ __forceinline__ void store_summary(int32_t* dst, const int32_t* pos, const int32_t* seg, int n) {
  const BlockSummary s = summarize_block(pos, seg, n);
  dst[0] = s.pos_min;
  dst[1] = s.pos_max;
  dst[2] = s.seg_min;
  dst[3] = s.seg_max;
}

template <int D>
__global__ void __launch_bounds__(kBwdWarps * 64) attn_bwd_dkdv_kernel(BwdParams p) {
  using T = MmaTile;
  using L = BwdLayout<D>;
  constexpr int kSlots = T::c_row_slots();
  constexpr int kQ = L::kStream;          // query rows per streamed tile
  constexpr int kScoreTiles = kQ / T::N;  // n-tiles of S^T, dP^T per warp (queries)
  constexpr int kOutTiles = D / T::N;     // n-tiles of dK, dV per warp
  constexpr int kDSteps = D / T::K;       // k-steps over head_dim (S^T, dP^T)
  constexpr int kQSteps = kQ / T::K;      // k-steps over queries (dV, dK)

  unsigned char* smem = dynamic_shared<unsigned char>();
  bf16_t* s_k = reinterpret_cast<bf16_t*>(smem);
  bf16_t* s_v = s_k + L::kOwnElems;
  bf16_t* s_q = s_v + L::kOwnElems;
  bf16_t* s_do = s_q + L::kStreamElems;
  bf16_t* s_p = s_do + L::kStreamElems;
  int32_t* s_qpos = reinterpret_cast<int32_t*>(smem + L::kInfoOffset);
  int32_t* s_qseg = s_qpos + kQ;
  float* s_lse = reinterpret_cast<float*>(s_qseg + kQ);
  float* s_delta = s_lse + kQ;
  int32_t* s_summary = reinterpret_cast<int32_t*>(smem + L::kSummaryOffset);

  const int warp = static_cast<int>(threadIdx.x) / warp_size(), lane = lane_id();
  const int64_t b = blockIdx.y / p.kv_heads, kvh = blockIdx.y % p.kv_heads;
  const int group = p.heads / p.kv_heads;
  const int k0 = static_cast<int>(blockIdx.x) * kBwdOwnRows;
  const int k_rows = p.n_k - k0 < kBwdOwnRows ? p.n_k - k0 : kBwdOwnRows;

  load_tile<D>(s_k, p.k, b * p.n_k + k0, k_rows, kBwdOwnRows, p.kv_heads, kvh);
  load_tile<D>(s_v, p.v, b * p.n_k + k0, k_rows, kBwdOwnRows, p.kv_heads, kvh);
  if (threadIdx.x == 0) store_summary(s_summary + 4, p.k_pos + b * p.n_k + k0, p.k_seg + b * p.n_k + k0, k_rows);

  // This lane's keys (per row slot of C) and their masks.
  int key_of_slot[kSlots];
  int32_t kpos_of_slot[kSlots], kseg_of_slot[kSlots];
  for (int i = 0; i < T::kC; ++i) key_of_slot[T::c_row_slot(i)] = warp * 16 + T::c_row(lane, i);
  for (int s = 0; s < kSlots; ++s) {
    const bool valid = key_of_slot[s] < k_rows;
    kpos_of_slot[s] = valid ? p.k_pos[b * p.n_k + k0 + key_of_slot[s]] : 0;
    kseg_of_slot[s] = valid ? p.k_seg[b * p.n_k + k0 + key_of_slot[s]] : -1;
  }
  T::C dk[kOutTiles], dv[kOutTiles];
  for (int t = 0; t < kOutTiles; ++t)
    for (int i = 0; i < T::kC; ++i) dk[t].x[i] = dv[t].x[i] = 0.f;
  bf16_t* s_pw = s_p + warp * 16 * L::kPStride;  // this warp's P^T, then dS^T
  __syncthreads();  // K, V and their summary in shared memory
  const BlockSummary k_summary{s_summary[4], s_summary[5], s_summary[6], s_summary[7]};

  for (int g = 0; g < group; ++g) {  // the group's query heads in a fixed order
    const int64_t h = kvh * group + g;
    for (int q0 = 0; q0 < p.n_q; q0 += kQ) {
      const int q_rows = p.n_q - q0 < kQ ? p.n_q - q0 : kQ;
      for (int e = static_cast<int>(threadIdx.x); e < kQ; e += static_cast<int>(blockDim.x)) {
        const bool valid = e < q_rows;
        const int64_t row = (b * p.heads + h) * p.n_q + q0 + e;
        s_qpos[e] = valid ? p.q_pos[b * p.n_q + q0 + e] : 0;
        s_qseg[e] = valid ? p.q_seg[b * p.n_q + q0 + e] : -1;
        s_lse[e] = valid ? p.lse[row] : neg_infinity();
        s_delta[e] = valid ? p.delta[row] : 0.f;
      }
      if (threadIdx.x == 0) store_summary(s_summary, p.q_pos + b * p.n_q + q0, p.q_seg + b * p.n_q + q0, q_rows);
      __syncthreads();  // the tile's query information
      const BlockSummary q_summary{s_summary[0], s_summary[1], s_summary[2], s_summary[3]};
      const TileKind kind = classify_tile(q_summary, k_summary, p.causal != 0);
      if (kind != TileKind::skip) {  // the same for the whole block
        load_tile<D>(s_q, p.q, b * p.n_q + q0, q_rows, kQ, p.heads, h);
        load_tile<D>(s_do, p.dout, b * p.n_q + q0, q_rows, kQ, p.heads, h);
        RW_SYNCTHREADS(kBarrierAttnBwdTileLoaded);
        // S^T = K Q^T and dP^T = V dO^T (keys x queries), fp32.
        T::C s[kScoreTiles], dp[kScoreTiles];
        for (int t = 0; t < kScoreTiles; ++t)
          for (int i = 0; i < T::kC; ++i) s[t].x[i] = dp[t].x[i] = 0.f;
        for (int step = 0; step < kDSteps; ++step) {
          T::A kf, vf;
          for (int i = 0; i < T::kA; ++i) {
            const int at = (warp * 16 + T::a_row(lane, i)) * L::kStride + step * T::K + T::a_col(lane, i);
            kf.x[i] = s_k[at];
            vf.x[i] = s_v[at];
          }
          for (int t = 0; t < kScoreTiles; ++t) {
            T::B qf, dof;
            for (int i = 0; i < T::kB; ++i) {
              const int at = (t * T::N + T::b_col(lane, i)) * L::kStride + step * T::K + T::b_row(lane, i);
              qf.x[i] = s_q[at];
              dof.x[i] = s_do[at];
            }
            T::mma(s[t], kf, qf);
            T::mma(dp[t], vf, dof);
          }
        }
        // P^T = exp(scale S^T - lse) where visible, kept in fp32 and stored as bf16 for dV.
        for (int t = 0; t < kScoreTiles; ++t)
          for (int i = 0; i < T::kC; ++i) {
            const int slot = T::c_row_slot(i), query = t * T::N + T::c_col(lane, i);
            bool visible = query < q_rows && key_of_slot[slot] < k_rows && s_lse[query] != neg_infinity();
            if (visible && kind == TileKind::partial)
              visible = key_visible(s_qpos[query], s_qseg[query], kpos_of_slot[slot], kseg_of_slot[slot], p.causal != 0);
            const float prob = visible ? expf(s[t].x[i] * p.scale - s_lse[query]) : 0.f;
            s[t].x[i] = prob;
            s_pw[T::c_row(lane, i) * L::kPStride + query] = from_float<bf16_t>(prob);
          }
        sync_warp();  // the warp's P^T is in shared memory
        // dV += P^T dO
        for (int step = 0; step < kQSteps; ++step) {
          T::A pf;
          for (int i = 0; i < T::kA; ++i) pf.x[i] = s_pw[T::a_row(lane, i) * L::kPStride + step * T::K + T::a_col(lane, i)];
          for (int t = 0; t < kOutTiles; ++t) {
            T::B dof;
            for (int i = 0; i < T::kB; ++i)
              dof.x[i] = s_do[(step * T::K + T::b_row(lane, i)) * L::kStride + t * T::N + T::b_col(lane, i)];
            T::mma(dv[t], pf, dof);
          }
        }
        sync_warp();  // P^T read before dS^T takes its place
        // dS^T = P^T (dP^T - delta) scale, from the fp32 P^T.
        for (int t = 0; t < kScoreTiles; ++t)
          for (int i = 0; i < T::kC; ++i) {
            const int query = t * T::N + T::c_col(lane, i);
            const float ds = s[t].x[i] * (dp[t].x[i] - s_delta[query]) * p.scale;
            s_pw[T::c_row(lane, i) * L::kPStride + query] = from_float<bf16_t>(ds);
          }
        sync_warp();  // the warp's dS^T is in shared memory
        // dK += dS^T Q
        for (int step = 0; step < kQSteps; ++step) {
          T::A dsf;
          for (int i = 0; i < T::kA; ++i)
            dsf.x[i] = s_pw[T::a_row(lane, i) * L::kPStride + step * T::K + T::a_col(lane, i)];
          for (int t = 0; t < kOutTiles; ++t) {
            T::B qf;
            for (int i = 0; i < T::kB; ++i)
              qf.x[i] = s_q[(step * T::K + T::b_row(lane, i)) * L::kStride + t * T::N + T::b_col(lane, i)];
            T::mma(dk[t], dsf, qf);
          }
        }
      }
      __syncthreads();  // the tile and its information read before the next tile's
    }
  }

  // Add into the running dK / dV (each element by one lane).
  for (int t = 0; t < kOutTiles; ++t)
    for (int i = 0; i < T::kC; ++i) {
      const int key = key_of_slot[T::c_row_slot(i)];
      if (key >= k_rows) continue;
      const int64_t at = ((b * p.n_k + k0 + key) * p.kv_heads + kvh) * D + t * T::N + T::c_col(lane, i);
      p.dk[at] += dk[t].x[i];
      p.dv[at] += dv[t].x[i];
    }
}

template <int D>
__global__ void __launch_bounds__(kBwdWarps * 64) attn_bwd_dq_kernel(BwdParams p) {
  using T = MmaTile;
  using L = BwdLayout<D>;
  constexpr int kSlots = T::c_row_slots();
  constexpr int kKeys = L::kStream;          // keys per streamed tile
  constexpr int kScoreTiles = kKeys / T::N;  // n-tiles of S, dP per warp (keys)
  constexpr int kOutTiles = D / T::N;        // n-tiles of dQ per warp
  constexpr int kDSteps = D / T::K;          // k-steps over head_dim (S, dP)
  constexpr int kKSteps = kKeys / T::K;      // k-steps over keys (dQ)

  unsigned char* smem = dynamic_shared<unsigned char>();
  bf16_t* s_q = reinterpret_cast<bf16_t*>(smem);
  bf16_t* s_do = s_q + L::kOwnElems;
  bf16_t* s_k = s_do + L::kOwnElems;
  bf16_t* s_v = s_k + L::kStreamElems;
  bf16_t* s_p = s_v + L::kStreamElems;
  int32_t* s_kpos = reinterpret_cast<int32_t*>(smem + L::kInfoOffset);
  int32_t* s_kseg = s_kpos + kKeys;
  int32_t* s_summary = reinterpret_cast<int32_t*>(smem + L::kSummaryOffset);

  const int warp = static_cast<int>(threadIdx.x) / warp_size(), lane = lane_id();
  const int64_t b = blockIdx.y / p.heads, h = blockIdx.y % p.heads;
  const int64_t kvh = h / (p.heads / p.kv_heads);
  const int q0 = static_cast<int>(blockIdx.x) * kBwdOwnRows;
  const int q_rows = p.n_q - q0 < kBwdOwnRows ? p.n_q - q0 : kBwdOwnRows;

  load_tile<D>(s_q, p.q, b * p.n_q + q0, q_rows, kBwdOwnRows, p.heads, h);
  load_tile<D>(s_do, p.dout, b * p.n_q + q0, q_rows, kBwdOwnRows, p.heads, h);
  if (threadIdx.x == 0) store_summary(s_summary, p.q_pos + b * p.n_q + q0, p.q_seg + b * p.n_q + q0, q_rows);

  // This lane's query rows (per row slot of C): masks, lse and delta.
  int row_of_slot[kSlots];
  int32_t qpos_of_slot[kSlots], qseg_of_slot[kSlots];
  float lse_of_slot[kSlots], delta_of_slot[kSlots];
  for (int i = 0; i < T::kC; ++i) row_of_slot[T::c_row_slot(i)] = warp * 16 + T::c_row(lane, i);
  for (int s = 0; s < kSlots; ++s) {
    const bool valid = row_of_slot[s] < q_rows;
    const int64_t row = (b * p.heads + h) * p.n_q + q0 + row_of_slot[s];
    qpos_of_slot[s] = valid ? p.q_pos[b * p.n_q + q0 + row_of_slot[s]] : 0;
    qseg_of_slot[s] = valid ? p.q_seg[b * p.n_q + q0 + row_of_slot[s]] : -1;
    lse_of_slot[s] = valid ? p.lse[row] : neg_infinity();
    delta_of_slot[s] = valid ? p.delta[row] : 0.f;
  }
  T::C dq[kOutTiles];
  for (int t = 0; t < kOutTiles; ++t)
    for (int i = 0; i < T::kC; ++i) dq[t].x[i] = 0.f;
  bf16_t* s_pw = s_p + warp * 16 * L::kPStride;  // this warp's dS
  __syncthreads();  // Q, dO and their summary in shared memory
  const BlockSummary q_summary{s_summary[0], s_summary[1], s_summary[2], s_summary[3]};

  for (int k0 = 0; k0 < p.n_k; k0 += kKeys) {
    const int k_rows = p.n_k - k0 < kKeys ? p.n_k - k0 : kKeys;
    for (int e = static_cast<int>(threadIdx.x); e < kKeys; e += static_cast<int>(blockDim.x)) {
      const bool valid = e < k_rows;
      s_kpos[e] = valid ? p.k_pos[b * p.n_k + k0 + e] : 0;
      s_kseg[e] = valid ? p.k_seg[b * p.n_k + k0 + e] : -1;
    }
    if (threadIdx.x == 0) store_summary(s_summary + 4, p.k_pos + b * p.n_k + k0, p.k_seg + b * p.n_k + k0, k_rows);
    __syncthreads();  // the tile's key information
    const BlockSummary k_summary{s_summary[4], s_summary[5], s_summary[6], s_summary[7]};
    const TileKind kind = classify_tile(q_summary, k_summary, p.causal != 0);
    if (kind != TileKind::skip) {  // the same for the whole block
      load_tile<D>(s_k, p.k, b * p.n_k + k0, k_rows, kKeys, p.kv_heads, kvh);
      load_tile<D>(s_v, p.v, b * p.n_k + k0, k_rows, kKeys, p.kv_heads, kvh);
      RW_SYNCTHREADS(kBarrierAttnBwdTileLoaded);
      // S = Q K^T and dP = dO V^T (queries x keys), fp32.
      T::C s[kScoreTiles], dp[kScoreTiles];
      for (int t = 0; t < kScoreTiles; ++t)
        for (int i = 0; i < T::kC; ++i) s[t].x[i] = dp[t].x[i] = 0.f;
      for (int step = 0; step < kDSteps; ++step) {
        T::A qf, dof;
        for (int i = 0; i < T::kA; ++i) {
          const int at = (warp * 16 + T::a_row(lane, i)) * L::kStride + step * T::K + T::a_col(lane, i);
          qf.x[i] = s_q[at];
          dof.x[i] = s_do[at];
        }
        for (int t = 0; t < kScoreTiles; ++t) {
          T::B kf, vf;
          for (int i = 0; i < T::kB; ++i) {
            const int at = (t * T::N + T::b_col(lane, i)) * L::kStride + step * T::K + T::b_row(lane, i);
            kf.x[i] = s_k[at];
            vf.x[i] = s_v[at];
          }
          T::mma(s[t], qf, kf);
          T::mma(dp[t], dof, vf);
        }
      }
      // dS = P (dP - delta) scale with P = exp(scale S - lse) where visible; bf16 into shared.
      RW_UNROLL
      for (int t = 0; t < kScoreTiles; ++t)
        RW_UNROLL
        for (int i = 0; i < T::kC; ++i) {
          const int slot = T::c_row_slot(i), key = t * T::N + T::c_col(lane, i);
          bool visible = key < k_rows && row_of_slot[slot] < q_rows && lse_of_slot[slot] != neg_infinity();
          if (visible && kind == TileKind::partial)
            visible = key_visible(qpos_of_slot[slot], qseg_of_slot[slot], s_kpos[key], s_kseg[key], p.causal != 0);
          const float prob = visible ? expf(s[t].x[i] * p.scale - lse_of_slot[slot]) : 0.f;
          const float ds = prob * (dp[t].x[i] - delta_of_slot[slot]) * p.scale;
          s_pw[T::c_row(lane, i) * L::kPStride + key] = from_float<bf16_t>(ds);
        }
      sync_warp();  // the warp's dS is in shared memory
      // dQ += dS K
      for (int step = 0; step < kKSteps; ++step) {
        T::A dsf;
        for (int i = 0; i < T::kA; ++i)
          dsf.x[i] = s_pw[T::a_row(lane, i) * L::kPStride + step * T::K + T::a_col(lane, i)];
        for (int t = 0; t < kOutTiles; ++t) {
          T::B kf;
          for (int i = 0; i < T::kB; ++i)
            kf.x[i] = s_k[(step * T::K + T::b_row(lane, i)) * L::kStride + t * T::N + T::b_col(lane, i)];
          T::mma(dq[t], dsf, kf);
        }
      }
    }
    __syncthreads();  // K, V, dS and the key information read before the next tile's
  }

  // Add into the running dQ (each element by one lane).
  for (int t = 0; t < kOutTiles; ++t)
    for (int i = 0; i < T::kC; ++i) {
      const int row = row_of_slot[T::c_row_slot(i)];
      if (row >= q_rows) continue;
      p.dq[((b * p.n_q + q0 + row) * p.heads + h) * D + t * T::N + T::c_col(lane, i)] += dq[t].x[i];
    }
}

template <int D>
void launch_fused_bwd(const AttnBwdStepArgs& a, const LaunchContext& ctx) {
  const AttnShape& s = a.shape;
  const BwdParams p{reinterpret_cast<const bf16_t*>(a.q),
                    reinterpret_cast<const bf16_t*>(a.k),
                    reinterpret_cast<const bf16_t*>(a.v),
                    reinterpret_cast<const bf16_t*>(a.dout),
                    a.lse,
                    a.delta,
                    a.dq,
                    a.dk,
                    a.dv,
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
  const int64_t heads = static_cast<int64_t>(s.batch) * s.heads;
  RW_CHECK(heads <= 65535, "attn_bwd_step (fused): batch x heads above 65535");
  const dim3 block(kBwdWarps * warp_size());
  const unsigned key_blocks = static_cast<unsigned>((s.n_k + kBwdOwnRows - 1) / kBwdOwnRows);
  const unsigned row_blocks = static_cast<unsigned>((s.n_q + kBwdOwnRows - 1) / kBwdOwnRows);
  launch_kernel(&attn_bwd_dkdv_kernel<D>, dim3(key_blocks, static_cast<unsigned>(s.batch) * s.kv_heads), block,
                BwdLayout<D>::kSharedBytes, ctx, p);
  launch_kernel(&attn_bwd_dq_kernel<D>, dim3(row_blocks, static_cast<unsigned>(heads)), block,
                BwdLayout<D>::kSharedBytes, ctx, p);
}

}  // namespace

bool attn_bwd_fused_applies(const AttnBwdStepArgs& a, const LaunchContext& ctx) {
  return ctx.attn_bwd_fused && a.dtype == DType::bf16 && (a.shape.head_dim == 64 || a.shape.head_dim == 128);
}

void attn_bwd_fused(const AttnBwdStepArgs& a, const LaunchContext& ctx) {
  if (a.shape.batch == 0 || a.shape.n_q == 0 || a.shape.n_k == 0) return;
  if (a.shape.head_dim == 64)
    launch_fused_bwd<64>(a, ctx);
  else
    launch_fused_bwd<128>(a, ctx);
}

}  // namespace rw::device::gpu::RW_GPU_NS
