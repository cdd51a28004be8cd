// forward_io.cpp
#include "io/forward_io.h"

#include <climits>
#include <cmath>

#include "io/h5_file.h"
#include "io/params_io_internal.h"
#include "mpi/runtime.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

// Integer datasets may be int32 or int64 (NumPy's default integer). int64 is converted by HDF5
// while reading into int32; a value outside the int32 range saturates to INT32_MIN or
// INT32_MAX, which refuse_saturated() then reports (no valid token id, target, position or
// segment id is either bound).
bool is_int_dataset(const DatasetInfo& info) { return info.type == ElementType::i32 || info.type_text == "int64"; }

const char* kIntTypes = "int32 or int64";
const char* kConvertHint = " (NumPy: x.astype(np.int32))";

void refuse_saturated(const std::vector<int32_t>& values, const std::string& name, const std::string& path) {
  for (int32_t v : values)
    if (v == INT32_MAX || v == INT32_MIN)
      throw InputError("dataset '" + name + "' in '" + path + "' holds a value outside the int32 range [" +
                       std::to_string(INT32_MIN + 1LL) + ", " + std::to_string(INT32_MAX - 1LL) + "]");
}

}  // namespace

data::LocalBatch read_forward_input(const std::string& path, int64_t vocab, Layout layout, int ring_size,
                                    int ring_rank, ForwardProblem* problem) {
  silence_hdf5_errors();
  H5File f = H5File::open_read(path);
  DatasetInfo tokens = f.dataset_info("tokens");
  if (!is_int_dataset(tokens) || tokens.dims.size() != 2)
    throw InputError("dataset 'tokens' in '" + path + "' is " + tokens.type_text + " " + dims_text(tokens.dims) +
                     ", expected " + kIntTypes + " [batch, seq]" + (is_int_dataset(tokens) ? "" : kConvertHint));
  const int64_t batch = tokens.dims[0], seq = tokens.dims[1];
  if (batch < 1 || seq < 1) throw InputError("dataset 'tokens' in '" + path + "' is empty");
  check_ring_split(layout, seq, ring_size);
  problem->batch = batch;
  problem->seq_len = seq;
  std::vector<std::string> int64_datasets;  // read through HDF5's conversion: checked for saturation
  if (tokens.type_text == "int64") int64_datasets.push_back("tokens");
  auto check_optional = [&](const char* name, bool integer) {
    if (!f.has_dataset(name)) return false;
    DatasetInfo info = f.dataset_info(name);
    const bool type_ok = integer ? is_int_dataset(info) : info.type == ElementType::f32;
    if (!type_ok || info.dims != tokens.dims)
      throw InputError(std::string("dataset '") + name + "' in '" + path + "' is " + info.type_text + " " +
                       dims_text(info.dims) + ", expected " + (integer ? kIntTypes : "float32") + " " +
                       dims_text(tokens.dims) + (type_ok ? "" : integer ? kConvertHint : " (NumPy: x.astype(np.float32))"));
    if (info.type_text == "int64") int64_datasets.push_back(name);
    return true;
  };
  const bool has_targets = check_optional("targets", true);
  const bool has_weights = check_optional("loss_weights", false);
  const bool has_segments = check_optional("segment_ids", true);
  const bool has_positions = check_optional("positions", true);

  const auto runs = local_token_runs(layout, seq, ring_size, ring_rank);
  const int64_t n_local = local_token_count(seq, ring_size);
  data::LocalBatch b;
  b.n_sequences = static_cast<int>(batch);
  b.n_local = static_cast<int>(n_local);
  const std::size_t n = static_cast<std::size_t>(batch * n_local);
  b.tokens.resize(n);
  b.targets.resize(n);
  b.positions.resize(n);
  b.segment_ids.assign(n, 0);
  b.loss_weights.assign(n, 1.f);
  const std::vector<int64_t> dims{batch, seq};
  f.read_token_runs("tokens", dims, 1, runs, ElementType::i32, b.tokens.data());
  if (has_targets) {
    f.read_token_runs("targets", dims, 1, runs, ElementType::i32, b.targets.data());
  } else {
    // targets[t] = tokens[t + 1]: read the runs shifted by one; the sequence's last token (always
    // the last local token of the rank that holds it) has no target.
    std::vector<TokenRun> shifted = runs;
    bool holds_last = false;
    for (TokenRun& r : shifted) {
      r.start += 1;
      if (r.start + (r.count - 1) * r.stride >= seq) {
        r.count -= 1;
        holds_last = true;
      }
    }
    std::vector<int32_t> next(static_cast<std::size_t>(batch * (n_local - (holds_last ? 1 : 0))));
    f.read_token_runs("tokens", dims, 1, shifted, ElementType::i32, next.data());
    const int64_t per_row = n_local - (holds_last ? 1 : 0);
    for (int64_t s = 0; s < batch; ++s)
      for (int64_t i = 0; i < n_local; ++i) b.targets[s * n_local + i] = i < per_row ? next[s * per_row + i] : -1;
  }
  if (has_weights) f.read_token_runs("loss_weights", dims, 1, runs, ElementType::f32, b.loss_weights.data());
  if (has_segments) f.read_token_runs("segment_ids", dims, 1, runs, ElementType::i32, b.segment_ids.data());
  if (has_positions) {
    f.read_token_runs("positions", dims, 1, runs, ElementType::i32, b.positions.data());
  } else {
    std::size_t i = 0;
    for (int64_t s = 0; s < batch; ++s)
      for (const TokenRun& r : runs)
        for (int64_t t = 0; t < r.count; ++t) b.positions[i++] = static_cast<int32_t>(r.start + t * r.stride);
  }
  for (const std::string& name : int64_datasets) {
    if (name == "tokens") refuse_saturated(b.tokens, name, path);
    if (name == "targets") refuse_saturated(b.targets, name, path);
    if (name == "segment_ids") refuse_saturated(b.segment_ids, name, path);
    if (name == "positions") refuse_saturated(b.positions, name, path);
  }
  // Token ids and targets must index the vocabulary; loss weights must be finite and >= 0.
  std::string bad;
  for (std::size_t i = 0; i < n && bad.empty(); ++i) {
    if (!(b.loss_weights[i] >= 0.f) || !std::isfinite(b.loss_weights[i]))
      bad = "loss weight " + std::to_string(b.loss_weights[i]) + " in 'loss_weights' is negative or not finite";
    else if (b.tokens[i] < 0 || b.tokens[i] >= vocab)
      bad = "token id " + std::to_string(b.tokens[i]) + " in 'tokens' is outside the model's vocabulary [0, " +
            std::to_string(vocab) + ")";
    else if (b.targets[i] >= vocab)
      bad = "target id " + std::to_string(b.targets[i]) + " is outside the model's vocabulary [0, " +
            std::to_string(vocab) + ")";
  }
  if (!bad.empty()) throw InputError(bad + " in '" + path + "'");
  return b;
}

void write_forward_output(const std::string& path, const model::LlamaConfig& config, const ForwardProblem& p,
                          const std::vector<TokenRun>& runs, const float* logits, double loss,
                          ShardedTensors* grads) {
  write_file_atomically(path, [&](H5File& file) {
    file.write_token_runs("logits", {p.batch, p.seq_len, config.total_vocab_size()}, 1, runs, ElementType::f32, logits);
    file.write_scalar("loss", loss);
    if (grads) write_tensor_group(file, *grads, "/grads", ShardField::grads, /*with_checksums=*/false);
  });
}

}  // namespace rw::io
