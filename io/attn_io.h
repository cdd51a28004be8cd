// attn_io.h: the files of the `attn` tool (see README): reads each rank's shard of the input
// and writes each rank's shard of the output, in the original token order on disk and the
// ring layout's local order in memory. No rank ever holds a whole tensor.
// Free of <hdf5.h> so src/ may include it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/common/ring_layout.h"
#include "src/common/host_buffer.h"

namespace rw::io {

struct AttnProblem {
  int64_t batch = 0, seq_len = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool has_dout = false, has_segment_ids = false, has_positions = false;
};

// This rank's tokens, local order: q/dout [batch, n_local, heads, head_dim], k/v
// [batch, n_local, kv_heads, head_dim], pos/seg [batch, n_local].
struct AttnShard {
  HostVector<float> q, k, v, dout;
  std::vector<int32_t> pos, seg;
};

class AttnInputFile {
 public:
  // Collective. Throws InputError when the file cannot be opened.
  explicit AttnInputFile(const std::string& path);
  ~AttnInputFile();
  // Validates datasets, ranks, dtypes and shapes; throws InputError naming the problem.
  AttnProblem inspect(bool need_dout) const;
  // Collective read of this rank's runs (default positions: the token index; segment: 0).
  AttnShard read_shard(const AttnProblem& problem, const std::vector<TokenRun>& runs) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct AttnOutputShard {
  const float* out = nullptr;  // [batch, n_local, heads, head_dim]
  const float* lse = nullptr;  // [batch, heads, n_local]
  const float* dq = nullptr;   // optional (backward)
  const float* dk = nullptr;
  const float* dv = nullptr;
};

// Collective. Writes path + ".tmp", closes it and renames it to path (rank 0) only once every
// rank's part is in; a failure on any rank removes the temporary file.
void write_attn_output(const std::string& path, const AttnProblem& problem,
                       const std::vector<TokenRun>& runs, const AttnOutputShard& shard);

// Throws InputError when path is a directory or its directory is missing or not writable;
// commands call it before computing, so a bad --output costs nothing.
void check_output_path(const std::string& path);

// Collective, atomic like write_attn_output: writes an input file for the tool (q, k, v, and
// dout / positions / segment_ids when the problem says it has them).
void write_attn_input(const std::string& path, const AttnProblem& problem,
                      const std::vector<TokenRun>& runs, const AttnShard& shard);

}  // namespace rw::io
