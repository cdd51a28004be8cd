// kv_cache.h: this rank's shard of the KV cache of one sequence being generated: for every
// layer the keys (RoPE applied) and values of the tokens this rank holds, with their positions
// and segment ids, in device memory of one backend. Rows [0, size) are filled: first the
// prefill's local tokens in ring-layout order (padding rows included: their segment id keeps
// them out of every query's view), then the decoded tokens this rank was given, appended. The
// capacity is fixed at construction (Generator computes it from the prompt and the number of
// tokens to generate), so decoding never allocates and never moves the cache.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "device/backend.h"

namespace rw::infer {

class KvCache {
 public:
  KvCache(device::Backend& backend, int layers, int kv_heads, int head_dim, int64_t capacity_tokens);

  // Device pointers: k(layer), v(layer) [capacity, kv_heads, head_dim]; pos, seg int32 [capacity].
  float* k(int layer) { return k_[static_cast<std::size_t>(layer)].data(); }
  float* v(int layer) { return v_[static_cast<std::size_t>(layer)].data(); }
  int32_t* pos() { return pos_.data(); }
  int32_t* seg() { return seg_.data(); }

  int64_t size() const { return size_; }        // rows filled
  int64_t capacity() const { return capacity_; }
  int64_t row_floats() const { return row_floats_; }  // kv_heads * head_dim
  int layers() const { return static_cast<int>(k_.size()); }
  // Sets the filled row count (the prefill's rows, then one more per appended token); checked
  // against the capacity.
  void set_size(int64_t rows);
  // Device bytes held (keys, values, positions, segment ids).
  std::size_t bytes() const;

 private:
  int64_t capacity_ = 0, row_floats_ = 0, size_ = 0;
  std::vector<device::DeviceArray<float>> k_, v_;
  device::DeviceArray<int32_t> pos_, seg_;
};

}  // namespace rw::infer
