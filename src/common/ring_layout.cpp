// ring_layout.cpp
#include "src/common/ring_layout.h"

#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw {

Layout parse_layout(const std::string& name) {
  if (name == "contiguous") return Layout::contiguous;
  if (name == "striped") return Layout::striped;
  if (name == "zigzag") return Layout::zigzag;
  throw InputError("unknown layout '" + name + "' (expected contiguous, striped or zigzag)");
}

std::string layout_name(Layout layout) {
  switch (layout) {
    case Layout::contiguous: return "contiguous";
    case Layout::striped: return "striped";
    case Layout::zigzag: return "zigzag";
  }
  return "?";
}

void check_ring_split(Layout layout, int64_t seq_len, int ring_size) {
  if (ring_size < 1) throw InputError("ring size must be at least 1");
  const int64_t parts = layout == Layout::zigzag ? 2 * int64_t(ring_size) : ring_size;
  if (seq_len <= 0 || seq_len % parts != 0) {
    throw InputError("sequence length " + std::to_string(seq_len) + " cannot be split over a ring of " +
                     std::to_string(ring_size) + " ranks with the " + layout_name(layout) +
                     " layout: it must be a positive multiple of " + std::to_string(parts) +
                     (layout == Layout::zigzag ? " (2 x ring size)" : " (the ring size)"));
  }
}

int64_t local_token_count(int64_t seq_len, int ring_size) { return seq_len / ring_size; }

std::vector<TokenRun> local_token_runs(Layout layout, int64_t seq_len, int ring_size, int rank) {
  check_ring_split(layout, seq_len, ring_size);
  RW_CHECK(rank >= 0 && rank < ring_size, "rank outside the ring");
  const int64_t n_local = seq_len / ring_size;
  switch (layout) {
    case Layout::contiguous: return {{rank * n_local, n_local, 1}};
    case Layout::striped: return {{rank, n_local, ring_size}};
    case Layout::zigzag: {
      const int64_t chunk = seq_len / (2 * int64_t(ring_size));
      return {{rank * chunk, chunk, 1}, {(2 * int64_t(ring_size) - 1 - rank) * chunk, chunk, 1}};
    }
  }
  RW_FAIL("unhandled layout");
}

std::vector<int64_t> local_token_indices(Layout layout, int64_t seq_len, int ring_size, int rank) {
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(seq_len / ring_size));
  for (const TokenRun& run : local_token_runs(layout, seq_len, ring_size, rank))
    for (int64_t i = 0; i < run.count; ++i) out.push_back(run.start + i * run.stride);
  return out;
}

}  // namespace rw
