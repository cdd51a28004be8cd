// ring_message.h: the header that precedes every ring payload, and its check on receipt.
#pragma once
#include <cstdint>
#include <string>

#include "src/common/fatal.h"

namespace rw {

enum class RingPayload : int32_t { kv_forward = 1, kv_backward = 2, dkv_backward = 3 };

struct RingHeader {
  int32_t magic = 0x52574e47;  // "RWNG"
  int32_t kind = 0;
  int32_t step = 0;
  int32_t layer = 0;
  int32_t origin_rank = 0;  // rank whose shard this is
  int32_t batch = 0;
  int32_t n_tokens = 0;
  int32_t kv_heads = 0;
  int32_t head_dim = 0;
  int32_t reserved = 0;
  int64_t n_bytes = 0;  // payload bytes that follow
};

inline std::string describe(const RingHeader& h) {
  return "{kind " + std::to_string(h.kind) + ", step " + std::to_string(h.step) + ", layer " +
         std::to_string(h.layer) + ", origin rank " + std::to_string(h.origin_rank) + ", batch " +
         std::to_string(h.batch) + ", tokens " + std::to_string(h.n_tokens) + ", kv_heads " +
         std::to_string(h.kv_heads) + ", head_dim " + std::to_string(h.head_dim) + ", bytes " +
         std::to_string(h.n_bytes) + "}";
}

inline void check_header(const RingHeader& got, const RingHeader& expected, int my_rank) {
  bool same = got.magic == expected.magic && got.kind == expected.kind && got.step == expected.step &&
              got.layer == expected.layer && got.origin_rank == expected.origin_rank &&
              got.batch == expected.batch && got.n_tokens == expected.n_tokens &&
              got.kv_heads == expected.kv_heads && got.head_dim == expected.head_dim &&
              got.n_bytes == expected.n_bytes;
  RW_CHECK(same, "rank " + std::to_string(my_rank) + " received ring message " + describe(got) +
                     " but expected " + describe(expected));
}

}  // namespace rw
