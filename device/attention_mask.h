// attention_mask.h: which keys a query may see, and how a (query block, key block) tile is
// classified so kernels skip wholly masked tiles and do not mask wholly visible ones.
//
// Visibility of key k for query q (positions and segment ids are per token, global):
//   seg[q] == seg[k]  and  seg[q] >= 0  and  (not causal  or  pos[k] <= pos[q]).
// With the defaults (one segment, pos = token index) this is the ordinary causal mask. A
// negative segment id marks a padding token: it sees no key (out 0, lse -inf, no gradient)
// and no query sees it.
//
// Tile classification uses per-block summaries (min/max of position and segment), so it is
// exact for "skip" and "full" and conservative otherwise (a "partial" tile is masked element
// by element, which is always correct).
#pragma once
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define RW_HOST_DEVICE __host__ __device__
#else
#define RW_HOST_DEVICE
#endif

namespace rw::device {

RW_HOST_DEVICE inline bool key_visible(int32_t q_pos, int32_t q_seg, int32_t k_pos, int32_t k_seg,
                                       bool causal) {
  return q_seg == k_seg && q_seg >= 0 && (!causal || k_pos <= q_pos);
}

struct BlockSummary {
  int32_t pos_min, pos_max;
  int32_t seg_min, seg_max;
};

enum class TileKind : uint8_t { skip, full, partial };

RW_HOST_DEVICE inline BlockSummary summarize_block(const int32_t* pos, const int32_t* seg, int n) {
  BlockSummary s{pos[0], pos[0], seg[0], seg[0]};
  for (int i = 1; i < n; ++i) {
    s.pos_min = pos[i] < s.pos_min ? pos[i] : s.pos_min;
    s.pos_max = pos[i] > s.pos_max ? pos[i] : s.pos_max;
    s.seg_min = seg[i] < s.seg_min ? seg[i] : s.seg_min;
    s.seg_max = seg[i] > s.seg_max ? seg[i] : s.seg_max;
  }
  return s;
}

RW_HOST_DEVICE inline TileKind classify_tile(const BlockSummary& q, const BlockSummary& k,
                                             bool causal) {
  // All padding on one side, no segment in common, or every key later than every query:
  // nothing visible.
  if (q.seg_max < 0 || k.seg_max < 0) return TileKind::skip;
  if (q.seg_max < k.seg_min || k.seg_max < q.seg_min) return TileKind::skip;
  if (causal && k.pos_min > q.pos_max) return TileKind::skip;
  // One segment on both sides (not padding: checked above) and every key no later than every
  // query: all visible.
  bool one_segment = q.seg_min == q.seg_max && k.seg_min == k.seg_max && q.seg_min == k.seg_min;
  if (one_segment && (!causal || k.pos_max <= q.pos_min)) return TileKind::full;
  return TileKind::partial;
}

}  // namespace rw::device
