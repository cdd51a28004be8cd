// kv_cache.h: this rank's shard of the KV cache of one sequence being generated: for every
// layer the keys (RoPE applied) and values of the tokens this rank holds, with their positions
// and segment ids, in device memory of one backend. Rows [0, size) are filled: first the
// prefill's local tokens in ring-layout order (padding rows included: their segment id keeps
// them out of every query's view), then the decoded tokens this rank was given, appended. The
// capacity is fixed at construction (Generator computes it from the prompt and the number of
// tokens to generate), so decoding never allocates and never moves the cache.
// Keys and values are stored in the cache's dtype: f32, or bf16 for `generate --precision bf16`
// (half the bytes; the pointers are float* either way, as AttentionOp passes bf16 data).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "device/backend.h"
#include "device/dtype.h"

namespace rw::infer {

class KvCache {
 public:
  // dtype: the storage of keys and values, f32 or bf16.
  KvCache(device::Backend& backend, int layers, int kv_heads, int head_dim, int64_t capacity_tokens,
          device::DType dtype = device::DType::f32);

  // Device pointers: k(layer), v(layer) [capacity, kv_heads, head_dim] in dtype(); pos, seg
  // int32 [capacity]. k_row / v_row: row `row` of them (offsets in bytes of dtype()).
  float* k(int layer) { return reinterpret_cast<float*>(k_[static_cast<std::size_t>(layer)].data()); }
  float* v(int layer) { return reinterpret_cast<float*>(v_[static_cast<std::size_t>(layer)].data()); }
  float* k_row(int layer, int64_t row) { return at(k_, layer, row); }
  float* v_row(int layer, int64_t row) { return at(v_, layer, row); }
  int32_t* pos() { return pos_.data(); }
  int32_t* seg() { return seg_.data(); }

  int64_t size() const { return size_; }        // rows filled
  int64_t capacity() const { return capacity_; }
  int64_t row_floats() const { return row_floats_; }  // elements per row: kv_heads * head_dim
  device::DType dtype() const { return dtype_; }
  std::size_t row_bytes() const { return static_cast<std::size_t>(row_floats_) * device::dtype_size(dtype_); }
  int layers() const { return static_cast<int>(k_.size()); }
  // Sets the filled row count (the prefill's rows, then one more per appended token); checked
  // against the capacity.
  void set_size(int64_t rows);
  // Device bytes held (keys, values, positions, segment ids).
  std::size_t bytes() const;

 private:
  float* at(std::vector<device::DeviceArray<unsigned char>>& kv, int layer, int64_t row) {
    return reinterpret_cast<float*>(kv[static_cast<std::size_t>(layer)].data() +
                                    static_cast<std::size_t>(row) * row_bytes());
  }

  int64_t capacity_ = 0, row_floats_ = 0, size_ = 0;
  device::DType dtype_ = device::DType::f32;
  std::vector<device::DeviceArray<unsigned char>> k_, v_;  // bytes of dtype_ elements
  device::DeviceArray<int32_t> pos_, seg_;
};

}  // namespace rw::infer
