// attention_fwd_fused.cpp: the fused AVX-512 attention forward of the CPU backend.
//
// Same algorithm as the OpenBLAS forward (attention_fast.cpp): OpenMP tasks over (batch, head,
// query block), an online softmax over the step's key blocks, one (O, lse) merge at the end;
// tasks write disjoint rows and do the same arithmetic whichever thread runs them, so the bits
// do not depend on the schedule or the thread count. What differs is where the time goes:
//   - The work goes by (batch, kv head): all threads pack that head's K^T and V once into panels
//     (avx512_tile_gemm.h), then share the tasks of every query head of the GQA group and every
//     query block, instead of sgemm re-packing both for each tile; a task packs its query block
//     once for all key blocks. Packing space: K^T and V of one kv head, reused across calls.
//   - Scores and P V are computed per panel of kRowPanel (8) query rows, so a panel's scores
//     stay in L1 between the products and the softmax.
//   - Tiles the block summaries call partial (the causal diagonal, document boundaries) are
//     refined per (row panel, 16-key panel): a row panel computes only the key panels between
//     its first and last ones that are not wholly masked, so the causal diagonal costs about
//     half a tile instead of a whole one.
// fp32 storage and accumulation throughout; the softmax row pass uses the exp of fast_exp.h.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "device/cpu/attention_tile_support.h"
#include "device/cpu/cpu_backend.h"
#include "device/cpu/fast_exp.h"
#include "device/cpu/fused_tiles.h"
#include "src/common/fatal.h"
#include "src/common/host_buffer.h"

namespace rw::device::cpu {
namespace {

using avx512::kKeyPanel;
using avx512::kRowPanel;

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// 64-byte aligned floats left uninitialised: the packing threads touch their own slots first.
struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using UninitFloats = std::unique_ptr<float[], FreeDeleter>;

UninitFloats allocate_floats(std::size_t n) {
  const std::size_t n_bytes = std::max<std::size_t>(64, (n * sizeof(float) + 63) / 64 * 64);
  auto* p = static_cast<float*>(std::aligned_alloc(64, n_bytes));
  RW_CHECK(p != nullptr, "out of host memory packing attention keys (" + std::to_string(n_bytes) + " bytes)");
  return UninitFloats(p);
}

// Packing space, kept by the calling thread from call to call: the ring calls the forward once
// per step with shards of one size, and first touches of fresh pages cost about as much as the
// packing itself (page faults: about 0.6 us per 4 KiB page on the project's VMs). Holds the
// largest request so far (K^T and V of one kv head: 2 * n_k * head_dim floats) until the thread ends.
float* reusable_packing_space(std::size_t n_floats) {
  thread_local UninitFloats space;
  thread_local std::size_t capacity = 0;
  if (capacity < n_floats) {
    space.reset();
    space = allocate_floats(n_floats);
    capacity = n_floats;
  }
  return space.get();
}

// K^T and V of one (batch, kv head) of a step in the layouts of avx512_tile_gemm.h, one slot per
// key block, each slot n_panels * kKeyPanel keys (the last block's tail panel padded with zero
// keys); and the position/segment summaries of every 16-key panel of the step.
class KeyPanels {
 public:
  KeyPanels(const AttnFwdStepArgs& a, int block_k)
      : a_(a),
        block_k_(block_k),
        n_blocks_(ceil_div(a.shape.n_k, block_k)),
        n_panels_(ceil_div(block_k, kKeyPanel)),
        slot_floats_(static_cast<std::size_t>(n_panels_) * kKeyPanel * a.shape.head_dim),
        k_t_(reusable_packing_space(2 * slot_floats_ * n_blocks_)),
        v_(k_t_ + slot_floats_ * n_blocks_),
        panel_summary_(static_cast<std::size_t>(a.shape.batch) * n_blocks_ * n_panels_) {
    for (int b = 0; b < a.shape.batch; ++b)
      for (int kb = 0; kb < n_blocks_; ++kb)
        for (int t = 0; t < ceil_div(keys_in_block(kb), kKeyPanel); ++t) {  // this block's keys only
          const int j0 = kb * block_k_ + t * kKeyPanel;
          const std::size_t off = static_cast<std::size_t>(b) * a.shape.n_k + j0;
          panel_summary_[(static_cast<std::size_t>(b) * n_blocks_ + kb) * n_panels_ + t] =
              summarize_block(a.mask.k_pos + off, a.mask.k_seg + off,
                              std::min(kKeyPanel, keys_in_block(kb) - t * kKeyPanel));
        }
  }

  // Packs (b, kvh), replacing what was there. Work-shared: every thread of the enclosing
  // parallel region must call it; returns when the panels are complete.
  void pack(int b, int kvh) {
    const int d = a_.shape.head_dim, ld_k = a_.shape.kv_heads * d;
#pragma omp for schedule(static)
    for (int kb = 0; kb < n_blocks_; ++kb) {
      const int cols = keys_in_block(kb);
      const std::size_t src0 = (static_cast<std::size_t>(b) * a_.shape.n_k + kb * block_k_) * ld_k + kvh * d;
      float* kt = k_t_ + kb * slot_floats_;
      float* v = v_ + kb * slot_floats_;
      for (int j0 = 0; j0 < cols; j0 += kKeyPanel) {
        const int n = std::min(kKeyPanel, cols - j0);
        const float* k_rows = a_.k + src0 + static_cast<std::size_t>(j0) * ld_k;
        const float* v_rows = a_.v + src0 + static_cast<std::size_t>(j0) * ld_k;
        float* panel = kt + static_cast<std::size_t>(j0) * d;
        // The next panel's rows: ld_k apart, too far for the hardware prefetchers.
        if (j0 + 2 * kKeyPanel <= cols)
          for (int j = kKeyPanel; j < 2 * kKeyPanel; ++j)
            for (int p = 0; p < d; p += 16) __builtin_prefetch(k_rows + static_cast<std::size_t>(j) * ld_k + p);
        for (int p = 0; p < d; ++p)
          for (int j = 0; j < kKeyPanel; ++j)
            panel[p * kKeyPanel + j] = j < n ? k_rows[static_cast<std::size_t>(j) * ld_k + p] : 0.f;
        for (int j = 0; j < n; ++j)
          std::copy_n(v_rows + static_cast<std::size_t>(j) * ld_k, d, v + static_cast<std::size_t>(j0 + j) * d);
      }
    }
  }

  int n_blocks() const { return n_blocks_; }
  int keys_in_block(int kb) const { return std::min(block_k_, a_.shape.n_k - kb * block_k_); }
  const float* k_t(int kb) const { return k_t_ + kb * slot_floats_; }
  const float* v(int kb) const { return v_ + kb * slot_floats_; }
  const BlockSummary& panel_summary(int b, int kb, int t) const {
    return panel_summary_[(static_cast<std::size_t>(b) * n_blocks_ + kb) * n_panels_ + t];
  }

 private:
  const AttnFwdStepArgs& a_;
  int block_k_, n_blocks_, n_panels_;
  std::size_t slot_floats_;
  float* k_t_;  // slot_floats_ per key block, in reusable_packing_space
  float* v_;
  std::vector<BlockSummary> panel_summary_;
};

// The key panels [first, last] of a block that a row panel must compute; empty when first > last.
struct PanelRange {
  int first, last;
};

PanelRange visible_panels(const BlockSummary& rows, const KeyPanels& keys, int b, int kb,
                          int n_panels, bool causal) {
  PanelRange r{n_panels, -1};
  for (int t = 0; t < n_panels; ++t)
    if (classify_tile(rows, keys.panel_summary(b, kb, t), causal) != TileKind::skip) {
      r.first = std::min(r.first, t);
      r.last = t;
    }
  return r;
}

// Query rows [0, rows) of a block (row stride ld_q) as panels [head_dim][kRowPanel], padded
// with zero rows to whole panels.
void pack_query_panels(const float* q, int ld_q, int rows, int head_dim, HostVector<float>& panels) {
  std::fill(panels.begin(), panels.end(), 0.f);
  for (int r = 0; r < rows; ++r) {
    float* dst = panels.data() + static_cast<std::size_t>(r / kRowPanel) * head_dim * kRowPanel + r % kRowPanel;
    const float* src = q + static_cast<std::size_t>(r) * ld_q;
    if (r + 8 < rows)  // rows are ld_q apart: too far for the hardware prefetchers
      for (int p = 0; p < head_dim; p += 16) __builtin_prefetch(src + 8 * static_cast<std::size_t>(ld_q) + p);
    for (int p = 0; p < head_dim; ++p) dst[p * kRowPanel] = src[p];
  }
}

// Merges the step's (acc / row_sum, row_max + log row_sum) of rows [0, rows) into the running
// (out, lse): out rows with stride ld_out, lse contiguous. Rows that saw no key are left alone.
void merge_into_output(const float* acc, const float* row_max, const float* row_sum, int rows, int head_dim,
                       float* out, int ld_out, float* lse) {
  for (int r = 0; r < rows; ++r) {
    if (row_sum[r] == 0.f) continue;  // no visible key for this row in this step
    const float step_lse = row_max[r] + std::log(row_sum[r]);
    const float old_lse = lse[r];
    const float new_lse = merged_lse(old_lse, step_lse);
    const float w_new = std::exp(step_lse - new_lse) / row_sum[r];
    float* orow = out + static_cast<std::size_t>(r) * ld_out;
    const float* arow = acc + static_cast<std::size_t>(r) * head_dim;
    if (r + 8 < rows)  // as in pack_query_panels
      for (int c = 0; c < head_dim; c += 16) __builtin_prefetch(orow + 8 * static_cast<std::size_t>(ld_out) + c, 1);
    if (old_lse == kNegInf) {  // first keys for this row (its out is 0): no need to read it
#pragma omp simd
      for (int c = 0; c < head_dim; ++c) orow[c] = w_new * arow[c];
    } else {
      const float w_old = std::exp(old_lse - new_lse);
#pragma omp simd
      for (int c = 0; c < head_dim; ++c) orow[c] = w_old * orow[c] + w_new * arow[c];
    }
    lse[r] = new_lse;
  }
}

// The online-softmax update of one row panel for the scores of keys [j_begin, j_begin + n_keys):
// turns the scores of rows [0, n_rows) into P = exp(score - running max), rescales their sums and
// accumulators when the max grows, and zeroes the P rows of the padding rows past n_rows.
// tile_max: the rows' score maxima when the caller has them (else nullptr: computed here).
void online_softmax_panel(const FusedTiles& tiles, float* scores, int ld_s, int j_begin, int n_keys, int n_rows,
                          const float* tile_max, float* row_max, float* row_sum, float* acc, int head_dim) {
  for (int r = 0; r < kRowPanel; ++r) {
    float* srow = scores + static_cast<std::size_t>(r) * ld_s + j_begin;
    const float m_new = r >= n_rows ? kNegInf
                                    : std::max(row_max[r], tile_max ? tile_max[r] : tiles.row_max(srow, n_keys));
    if (m_new == kNegInf) {  // padding row, or nothing visible to this row yet: P row is zero
      std::fill(srow, srow + n_keys, 0.f);
      continue;
    }
    const float tile_sum = tiles.exp_shift_sum(srow, n_keys, m_new);
    const float correction = row_max[r] == kNegInf ? 0.f : exp_fast(row_max[r] - m_new);
    row_sum[r] = row_sum[r] * correction + tile_sum;
    if (correction != 1.f) {
      float* arow = acc + static_cast<std::size_t>(r) * head_dim;
#pragma omp simd
      for (int c = 0; c < head_dim; ++c) arow[c] *= correction;
    }
    row_max[r] = m_new;
  }
}

}  // namespace

void attn_fwd_step_fused(const AttnFwdStepArgs& a, const ProgressHook& hook, const FusedTiles& tiles) {
  const AttnShape& s = a.shape;
  check_attn_shape(s, a.tiling);
  if (s.batch == 0 || s.n_q == 0 || s.n_k == 0) return hook();
  RW_CHECK(s.head_dim % kKeyPanel == 0, "fused attention forward called with head_dim " + std::to_string(s.head_dim));
  const int d = s.head_dim, group = s.heads / s.kv_heads;
  const int bq = std::min(a.tiling.block_q, s.n_q), bk = std::min(a.tiling.block_k, s.n_k);
  const int n_qb = ceil_div(s.n_q, bq);
  const int n_row_panels = ceil_div(bq, kRowPanel), bq_padded = n_row_panels * kRowPanel;
  const int ld_s = ceil_div(bk, kKeyPanel) * kKeyPanel;  // scores row stride (whole panels)
  const int ld_q = s.heads * d;
  const auto q_sum = summarize_blocks(a.mask.q_pos, a.mask.q_seg, s.batch, s.n_q, bq);
  const auto k_sum = summarize_blocks(a.mask.k_pos, a.mask.k_seg, s.batch, s.n_k, bk);
  KeyPanels keys(a, bk);
  const int n_kb = keys.n_blocks();
  const int n_tasks = group * n_qb;  // per (batch, kv head): the group's query heads x query blocks

#pragma omp parallel
  {
    HostVector<float> q_pack(static_cast<std::size_t>(bq_padded) * d);
    HostVector<float> scores(static_cast<std::size_t>(kRowPanel) * ld_s);
    HostVector<float> acc(static_cast<std::size_t>(bq_padded) * d);
    std::vector<float> row_max(bq_padded), row_sum(bq_padded);
    std::vector<BlockSummary> panel_rows(n_row_panels);
    const bool is_master = omp_get_thread_num() == 0;
    for (int b = 0; b < s.batch; ++b)
      for (int kvh = 0; kvh < s.kv_heads; ++kvh) {
        keys.pack(b, kvh);
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < n_tasks; ++task) {  // ends with a barrier: the next pack waits for it
          const int h = kvh * group + task / n_qb;
          // Query blocks last to first: under a causal mask the late blocks have the most keys,
          // and running them first leaves small tasks to even out the threads at the end.
          const int qb = n_qb - 1 - task % n_qb;
          const int q0 = qb * bq, rows = std::min(bq, s.n_q - q0);
          const float* q_blk = a.q + (static_cast<std::size_t>(b) * s.n_q + q0) * ld_q + h * d;
          const int32_t* qp = a.mask.q_pos + static_cast<std::size_t>(b) * s.n_q + q0;
          const int32_t* qs = a.mask.q_seg + static_cast<std::size_t>(b) * s.n_q + q0;
          // A ragged last block has fewer row panels than a whole one: the others would hold
          // only padding rows (and have no positions or segments to summarise).
          const int row_panels = ceil_div(rows, kRowPanel);
          pack_query_panels(q_blk, ld_q, rows, d, q_pack);
          for (int rp = 0; rp < row_panels; ++rp)
            panel_rows[rp] = summarize_block(qp + rp * kRowPanel, qs + rp * kRowPanel,
                                             std::min(kRowPanel, rows - rp * kRowPanel));
          std::fill(row_max.begin(), row_max.end(), kNegInf);
          std::fill(row_sum.begin(), row_sum.end(), 0.f);
          std::fill(acc.begin(), acc.end(), 0.f);
          bool any_tile = false;
          for (int kb = 0; kb < n_kb; ++kb) {
            const TileKind kind = classify_tile(q_sum[static_cast<std::size_t>(b) * n_qb + qb],
                                                k_sum[static_cast<std::size_t>(b) * n_kb + kb], a.mask.causal);
            if (kind == TileKind::skip) continue;
            any_tile = true;
            const int k0 = kb * bk, cols = keys.keys_in_block(kb), n_panels = ceil_div(cols, kKeyPanel);
            for (int rp = 0; rp < row_panels; ++rp) {
              const int r0 = rp * kRowPanel, panel_rows_real = std::min(kRowPanel, rows - r0);
              const PanelRange range = kind == TileKind::full
                                           ? PanelRange{0, n_panels - 1}
                                           : visible_panels(panel_rows[rp], keys, b, kb, n_panels, a.mask.causal);
              if (range.first > range.last) continue;  // nothing visible to these rows in this block
              const int j_begin = range.first * kKeyPanel, j_end = std::min(cols, (range.last + 1) * kKeyPanel);
              const int n_keys = j_end - j_begin;
              float tile_max[kRowPanel];
              tiles.qk_tile(q_pack.data() + static_cast<std::size_t>(rp) * d * kRowPanel,
                              keys.k_t(kb) + static_cast<std::size_t>(j_begin) * d, range.last - range.first + 1,
                              d, a.scale, scores.data() + j_begin, ld_s, tile_max);
              if (kind == TileKind::partial)
                apply_mask(scores.data() + j_begin, panel_rows_real, n_keys, ld_s, qp + r0, qs + r0,
                           a.mask.k_pos + static_cast<std::size_t>(b) * s.n_k + k0 + j_begin,
                           a.mask.k_seg + static_cast<std::size_t>(b) * s.n_k + k0 + j_begin, a.mask.causal);
              // qk_tile's row maxima ignore the mask and count the zero scores of padding keys.
              const bool tile_max_exact = kind == TileKind::full && n_keys % kKeyPanel == 0;
              online_softmax_panel(tiles, scores.data(), ld_s, j_begin, n_keys, panel_rows_real,
                                   tile_max_exact ? tile_max : nullptr, row_max.data() + r0, row_sum.data() + r0,
                                   acc.data() + static_cast<std::size_t>(r0) * d, d);
              tiles.pv_tile(scores.data(), ld_s, keys.v(kb), d, j_begin, j_end,
                              acc.data() + static_cast<std::size_t>(r0) * d);
            }
          }
          if (any_tile)
            merge_into_output(acc.data(), row_max.data(), row_sum.data(), rows, d,
                              a.out + (static_cast<std::size_t>(b) * s.n_q + q0) * ld_q + h * d, ld_q,
                              a.lse + (static_cast<std::size_t>(b) * s.heads + h) * s.n_q + q0);
          if (is_master) hook();
        }
      }
  }
}

}  // namespace rw::device::cpu
