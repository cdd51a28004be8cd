// ring_layout.h: how a sequence of seq_len tokens is split over the ring_size ranks of a ring.
// Plain arithmetic that io/ (token hyperslabs) and core share, so it lives in common; core
// includes it as src/attention/layout.h.
//   contiguous  rank r owns tokens [r*L, (r+1)*L), L = seq_len / ring_size
//   striped     rank r owns tokens p with p % ring_size == r
//   zigzag      the sequence is cut into 2*ring_size chunks of C tokens; rank r owns chunk r
//               and chunk 2*ring_size-1-r (balanced causal work at every ring step)
// A rank's local tokens are kept in the order given by local_token_runs(). Callers outside
// src/attention/ and io/ never see the permutation: inputs are read and outputs written in the
// original token order through these runs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw {

enum class Layout { contiguous, striped, zigzag };

Layout parse_layout(const std::string& name);  // throws InputError on an unknown name
std::string layout_name(Layout layout);

// Throws InputError naming the numbers when seq_len cannot be split (seq_len % ring_size, or
// % (2*ring_size) for zigzag, must be 0, and every rank must get at least one token).
void check_ring_split(Layout layout, int64_t seq_len, int ring_size);

// A strided run of global token indices: start, start+stride, ... (count of them).
struct TokenRun {
  int64_t start = 0;
  int64_t count = 0;
  int64_t stride = 1;
};

// The runs that make up rank's local tokens, in local order (1 run, or 2 for zigzag).
std::vector<TokenRun> local_token_runs(Layout layout, int64_t seq_len, int ring_size, int rank);

// Global token index of each local token, in local order.
std::vector<int64_t> local_token_indices(Layout layout, int64_t seq_len, int ring_size, int rank);

int64_t local_token_count(int64_t seq_len, int ring_size);

}  // namespace rw
