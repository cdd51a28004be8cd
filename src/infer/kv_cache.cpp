// kv_cache.cpp: see kv_cache.h.
#include "src/infer/kv_cache.h"

#include <algorithm>
#include <string>

#include "src/common/fatal.h"

namespace rw::infer {

KvCache::KvCache(device::Backend& backend, int layers, int kv_heads, int head_dim, int64_t capacity_tokens,
                 device::DType dtype)
    : capacity_(capacity_tokens), row_floats_(static_cast<int64_t>(kv_heads) * head_dim), dtype_(dtype) {
  RW_CHECK(layers > 0 && kv_heads > 0 && head_dim > 0 && capacity_tokens >= 0, "KV cache: bad shape");
  RW_CHECK(dtype == device::DType::f32 || dtype == device::DType::bf16,
           std::string("KV cache: keys and values are f32 or bf16, not ") + device::dtype_name(dtype));
  // At least one row each, so every pointer is a real allocation.
  const std::size_t rows = static_cast<std::size_t>(std::max<int64_t>(capacity_tokens, 1));
  for (int l = 0; l < layers; ++l) {
    k_.emplace_back(backend, rows * row_bytes());
    v_.emplace_back(backend, rows * row_bytes());
  }
  pos_ = device::DeviceArray<int32_t>(backend, rows);
  seg_ = device::DeviceArray<int32_t>(backend, rows);
}

void KvCache::set_size(int64_t rows) {
  RW_CHECK(rows >= 0 && rows <= capacity_, "KV cache: " + std::to_string(rows) + " rows exceed its capacity of " +
                                               std::to_string(capacity_) + " tokens");
  size_ = rows;
}

std::size_t KvCache::bytes() const {
  std::size_t total = pos_.n_bytes() + seg_.n_bytes();
  for (std::size_t l = 0; l < k_.size(); ++l) total += k_[l].n_bytes() + v_[l].n_bytes();
  return total;
}

}  // namespace rw::infer
