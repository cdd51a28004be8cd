// attn_io.cpp
#include "io/attn_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>

#include "io/h5_file.h"
#include "mpi/runtime.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

// segment_ids and positions may be int32 or int64 (NumPy's default integer): int64 is converted
// by HDF5 while reading into int32, and a value outside the int32 range saturates to INT32_MIN
// or INT32_MAX, which read_shard refuses (no valid position or segment id is either bound).
bool is_int_dataset(const DatasetInfo& info) { return info.type == ElementType::i32 || info.type_text == "int64"; }

void refuse_saturated(const std::vector<int32_t>& values, const std::string& name, const std::string& path) {
  for (int32_t v : values)
    if (v == INT32_MAX || v == INT32_MIN)
      throw InputError("dataset '" + name + "' in '" + path + "' holds a value outside the int32 range [" +
                       std::to_string(INT32_MIN + 1LL) + ", " + std::to_string(INT32_MAX - 1LL) + "]");
}

int64_t run_tokens(const std::vector<TokenRun>& runs) {
  int64_t n = 0;
  for (const auto& r : runs) n += r.count;
  return n;
}

}  // namespace

struct AttnInputFile::Impl {
  H5File file;
};

AttnInputFile::AttnInputFile(const std::string& path) {
  silence_hdf5_errors();
  impl_ = std::make_unique<Impl>(Impl{H5File::open_read(path)});
}

AttnInputFile::~AttnInputFile() = default;

AttnProblem AttnInputFile::inspect(bool need_dout) const {
  const H5File& f = impl_->file;
  const std::string& path = f.path();
  auto require = [&](const std::string& name, int rank, ElementType type, const char* type_name) {
    DatasetInfo info = f.dataset_info(name);
    if (info.type != type)
      throw InputError("dataset '" + name + "' in '" + path + "' is " + info.type_text + ", expected " + type_name);
    if (static_cast<int>(info.dims.size()) != rank)
      throw InputError("dataset '" + name + "' in '" + path + "' has shape " + dims_text(info.dims) + " (rank " +
                       std::to_string(info.dims.size()) + "), expected rank " + std::to_string(rank));
    for (int64_t d : info.dims)
      if (d <= 0) throw InputError("dataset '" + name + "' in '" + path + "' has an empty dimension " + dims_text(info.dims));
    return info;
  };
  AttnProblem p;
  DatasetInfo q = require("q", 4, ElementType::f32, "float32 [batch, seq, heads, head_dim]");
  DatasetInfo k = require("k", 4, ElementType::f32, "float32 [batch, seq, kv_heads, head_dim]");
  DatasetInfo v = require("v", 4, ElementType::f32, "float32 [batch, seq, kv_heads, head_dim]");
  p.batch = q.dims[0];
  p.seq_len = q.dims[1];
  p.heads = q.dims[2];
  p.head_dim = q.dims[3];
  p.kv_heads = k.dims[2];
  const std::vector<int64_t> kv_expected{p.batch, p.seq_len, p.kv_heads, p.head_dim};
  if (k.dims != kv_expected)
    throw InputError("dataset 'k' has shape " + dims_text(k.dims) + " but q " + dims_text(q.dims) +
                     " needs [batch, seq, kv_heads, head_dim] = " + dims_text(kv_expected));
  if (v.dims != k.dims)
    throw InputError("dataset 'v' has shape " + dims_text(v.dims) + " but 'k' has " + dims_text(k.dims));
  if (p.heads % p.kv_heads != 0)
    throw InputError("heads (" + std::to_string(p.heads) + ") is not divisible by kv_heads (" +
                     std::to_string(p.kv_heads) + ")");
  if (p.batch * p.seq_len > INT32_MAX || p.seq_len > INT32_MAX)
    throw InputError("batch x seq (" + std::to_string(p.batch * p.seq_len) + ") is too large");
  p.has_dout = f.has_dataset("dout");
  if (need_dout && !p.has_dout) throw InputError("--backward needs dataset 'dout' in '" + path + "'");
  if (p.has_dout) {
    DatasetInfo g = require("dout", 4, ElementType::f32, "float32 [batch, seq, heads, head_dim]");
    if (g.dims != q.dims)
      throw InputError("dataset 'dout' has shape " + dims_text(g.dims) + " but 'q' has " + dims_text(q.dims));
  }
  const std::vector<int64_t> tok_expected{p.batch, p.seq_len};
  for (const char* name : {"segment_ids", "positions"}) {
    if (!f.has_dataset(name)) continue;
    DatasetInfo t = f.dataset_info(name);
    if (!is_int_dataset(t))
      throw InputError(std::string("dataset '") + name + "' in '" + path + "' is " + t.type_text +
                       ", expected int32 or int64 [batch, seq] (NumPy: x.astype(np.int32))");
    t = require(name, 2, t.type, "int32 or int64 [batch, seq]");
    if (t.dims != tok_expected)
      throw InputError(std::string("dataset '") + name + "' has shape " + dims_text(t.dims) + ", expected " +
                       dims_text(tok_expected));
    (std::string(name) == "positions" ? p.has_positions : p.has_segment_ids) = true;
  }
  return p;
}

AttnShard AttnInputFile::read_shard(const AttnProblem& p, const std::vector<TokenRun>& runs) const {
  const H5File& f = impl_->file;
  const int64_t n_local = run_tokens(runs);
  const std::size_t q_count = static_cast<std::size_t>(p.batch * n_local * p.heads * p.head_dim);
  const std::size_t kv_count = static_cast<std::size_t>(p.batch * n_local * p.kv_heads * p.head_dim);
  const std::size_t tok_count = static_cast<std::size_t>(p.batch * n_local);
  AttnShard s;
  s.q.resize(q_count);
  s.k.resize(kv_count);
  s.v.resize(kv_count);
  s.pos.resize(tok_count);
  s.seg.assign(tok_count, 0);
  f.read_token_runs("q", {p.batch, p.seq_len, p.heads, p.head_dim}, 1, runs, ElementType::f32, s.q.data());
  const std::vector<int64_t> kv_dims{p.batch, p.seq_len, p.kv_heads, p.head_dim};
  f.read_token_runs("k", kv_dims, 1, runs, ElementType::f32, s.k.data());
  f.read_token_runs("v", kv_dims, 1, runs, ElementType::f32, s.v.data());
  if (p.has_dout) {
    s.dout.resize(q_count);
    f.read_token_runs("dout", {p.batch, p.seq_len, p.heads, p.head_dim}, 1, runs, ElementType::f32,
                      s.dout.data());
  }
  if (p.has_positions) {
    f.read_token_runs("positions", {p.batch, p.seq_len}, 1, runs, ElementType::i32, s.pos.data());
    refuse_saturated(s.pos, "positions", f.path());
  } else {  // default position: the token's index in the sequence
    std::size_t i = 0;
    for (int64_t b = 0; b < p.batch; ++b)
      for (const TokenRun& run : runs)
        for (int64_t t = 0; t < run.count; ++t) s.pos[i++] = static_cast<int32_t>(run.start + t * run.stride);
  }
  if (p.has_segment_ids) {
    f.read_token_runs("segment_ids", {p.batch, p.seq_len}, 1, runs, ElementType::i32, s.seg.data());
    refuse_saturated(s.seg, "segment_ids", f.path());
  }
  return s;
}

void check_output_path(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode))
    throw InputError("output '" + path + "' is a directory");
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))
    throw InputError("output directory '" + dir + "' does not exist");
  if (access(dir.c_str(), W_OK) != 0) throw InputError("output directory '" + dir + "' is not writable");
}

void write_attn_output(const std::string& path, const AttnProblem& p, const std::vector<TokenRun>& runs,
                       const AttnOutputShard& shard) {
  const std::vector<int64_t> q_dims{p.batch, p.seq_len, p.heads, p.head_dim};
  const std::vector<int64_t> kv_dims{p.batch, p.seq_len, p.kv_heads, p.head_dim};
  write_file_atomically(path, [&](H5File& file) {
    file.write_token_runs("out", q_dims, 1, runs, ElementType::f32, shard.out);
    file.write_token_runs("lse", {p.batch, p.heads, p.seq_len}, 2, runs, ElementType::f32, shard.lse);
    if (shard.dq) {
      file.write_token_runs("dq", q_dims, 1, runs, ElementType::f32, shard.dq);
      file.write_token_runs("dk", kv_dims, 1, runs, ElementType::f32, shard.dk);
      file.write_token_runs("dv", kv_dims, 1, runs, ElementType::f32, shard.dv);
    }
  });
}

void write_attn_input(const std::string& path, const AttnProblem& p, const std::vector<TokenRun>& runs,
                      const AttnShard& shard) {
  const std::vector<int64_t> q_dims{p.batch, p.seq_len, p.heads, p.head_dim};
  const std::vector<int64_t> kv_dims{p.batch, p.seq_len, p.kv_heads, p.head_dim};
  write_file_atomically(path, [&](H5File& file) {
    file.write_token_runs("q", q_dims, 1, runs, ElementType::f32, shard.q.data());
    file.write_token_runs("k", kv_dims, 1, runs, ElementType::f32, shard.k.data());
    file.write_token_runs("v", kv_dims, 1, runs, ElementType::f32, shard.v.data());
    if (p.has_dout) file.write_token_runs("dout", q_dims, 1, runs, ElementType::f32, shard.dout.data());
    if (p.has_positions) file.write_token_runs("positions", {p.batch, p.seq_len}, 1, runs, ElementType::i32, shard.pos.data());
    if (p.has_segment_ids)
      file.write_token_runs("segment_ids", {p.batch, p.seq_len}, 1, runs, ElementType::i32, shard.seg.data());
  });
}

}  // namespace rw::io
