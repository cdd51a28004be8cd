// make_seed_corpus.cpp: writes the HDF5 seed inputs of the fuzz targets with ringworld's own
// writers, so the seeds are exactly the files the tools write (small shapes: each a few KiB).
//   make_seed_corpus DIR    writes DIR/<target>/seed_*.h5 (files) and prog_*.bin (programs that
//                           build files: h5_builder.h)
// The committed seeds in tests/fuzz/corpus/ came from this program; rerun it after a format
// change. The text targets (jsonl, config) have hand-written seeds.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io/attn_io.h"
#include "io/checkpoint.h"
#include "io/h5_file.h"
#include "io/params_io.h"
#include "io/token_dataset.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "src/train/fsdp_params.h"
#include "tests/fuzz/h5_builder.h"

namespace {

void attn_seed(const std::string& path, bool extras) {
  rw::io::AttnProblem p;
  p.batch = 1;
  p.seq_len = 8;
  p.heads = 2;
  p.kv_heads = 1;
  p.head_dim = 2;
  p.has_dout = p.has_positions = p.has_segment_ids = extras;
  const auto runs = rw::local_token_runs(rw::Layout::contiguous, p.seq_len, 1, 0);
  rw::io::AttnShard s;
  s.q.resize(p.batch * p.seq_len * p.heads * p.head_dim);
  s.k.resize(p.batch * p.seq_len * p.kv_heads * p.head_dim);
  s.v.resize(s.k.size());
  s.dout.resize(s.q.size());
  for (std::size_t i = 0; i < s.q.size(); ++i) s.q[i] = s.dout[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
  for (std::size_t i = 0; i < s.k.size(); ++i) s.k[i] = s.v[i] = 0.125f * static_cast<float>(i % 5);
  for (int t = 0; t < p.seq_len; ++t) {
    s.pos.push_back(t % 4);
    s.seg.push_back(t / 4);
  }
  rw::io::write_attn_input(path, p, runs, s);
}

void forward_seed(const std::string& path, bool extras) {
  const int64_t batch = 2, seq = 8;
  const auto runs = rw::local_token_runs(rw::Layout::contiguous, seq, 1, 0);
  std::vector<int32_t> tokens, targets, segments, positions;
  std::vector<float> weights;
  for (int64_t i = 0; i < batch * seq; ++i) {
    tokens.push_back(static_cast<int32_t>((7 * i) % 256));
    targets.push_back(i % seq == seq - 1 ? -1 : static_cast<int32_t>((7 * i + 7) % 256));
    segments.push_back(static_cast<int32_t>((i % seq) / 4));
    positions.push_back(static_cast<int32_t>(i % 4));
    weights.push_back(i % 3 ? 1.f : 0.5f);
  }
  rw::io::write_file_atomically(path, [&](rw::io::H5File& f) {
    using rw::io::ElementType;
    f.write_token_runs("tokens", {batch, seq}, 1, runs, ElementType::i32, tokens.data());
    if (!extras) return;
    f.write_token_runs("targets", {batch, seq}, 1, runs, ElementType::i32, targets.data());
    f.write_token_runs("loss_weights", {batch, seq}, 1, runs, ElementType::f32, weights.data());
    f.write_token_runs("segment_ids", {batch, seq}, 1, runs, ElementType::i32, segments.data());
    f.write_token_runs("positions", {batch, seq}, 1, runs, ElementType::i32, positions.data());
  });
}

void dataset_seed(const std::string& path, bool with_mask) {
  rw::io::TokenDatasetWriter w(path, 256, "byte", with_mask);
  for (const char* doc : {"ring", "attention over a ring of ranks", "x", "blockwise"}) {
    std::vector<int32_t> ids;
    std::vector<uint8_t> mask;
    for (const char* c = doc; *c; ++c) {
      ids.push_back(static_cast<unsigned char>(*c));
      mask.push_back(c == doc ? 0 : 1);
    }
    w.add_document(ids, with_mask ? &mask : nullptr);
  }
  w.finish();
}

rw::model::LlamaConfig micro_config() {
  rw::model::LlamaConfig c;
  c.vocab_size = 16;
  c.hidden_size = 4;
  c.intermediate_size = 8;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.validate();
  return c;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "make_seed_corpus: cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

std::vector<uint8_t> le(uint64_t value, int n_bytes) {
  std::vector<uint8_t> out;
  for (int i = 0; i < n_bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
  return out;
}

uint8_t index_of(const std::vector<std::string>& list, const std::string& name) {
  for (std::size_t i = 0; i < list.size(); ++i)
    if (list[i] == name) return static_cast<uint8_t>(i);
  std::fprintf(stderr, "make_seed_corpus: no name %s\n", name.c_str());
  std::exit(1);
}

// Inputs that once found a defect, written as programs (h5_builder.h) so each states its case.
void regression_programs(const std::string& dir) {
  using T = rw::fuzz::H5Program::Type;
  const rw::fuzz::H5Names& ckpt = rw::fuzz::checkpoint_names();
  // Attributes that are arrays where a scalar is expected: `ckpt info` (describe_checkpoint) read
  // an integer array into one int64 on the stack and a string array into one string's buffer
  // (stack and heap buffer overflows); read_checkpoint_state read "format" the same way.
  write_bytes(dir + "/checkpoint/regress_array_attributes.bin",
              rw::fuzz::H5Program()
                  .root_attribute(index_of(ckpt.attributes, "format"), T::listed_str, {0}, 3)
                  .root_attribute(index_of(ckpt.attributes, "vocab_size"), T::i64, le(16, 8), 3)
                  .root_attribute(index_of(ckpt.attributes, "rms_norm_eps"), T::f64, le(0, 8), 2)
                  .root_attribute(index_of(ckpt.attributes, "stage"), T::str8, {'a', 'b'}, 3)
                  .bytes());
  // The same for a token dataset's tokenizer attribute.
  std::vector<uint8_t> offsets = le(0, 8), end = le(6, 8);
  offsets.insert(offsets.end(), end.begin(), end.end());
  write_bytes(dir + "/token_dataset/regress_tokenizer_array.bin",
              rw::fuzz::H5Program()
                  .dataset(0, T::i32, {6}, le(104, 4))
                  .dataset(1, T::i64, {2}, offsets)
                  .root_attribute(0, T::i64, le(256, 8))
                  .root_attribute(1, T::str8, {'b', 'y', 't', 'e'}, 3)
                  .bytes());
}

// Structured seeds (h5_builder.h): programs that build valid files for each reader.
void program_seeds(const std::string& dir) {
  using T = rw::fuzz::H5Program::Type;
  const std::vector<uint8_t> small_floats = {0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x00, 0xbf};  // 0.25, -0.5
  write_bytes(dir + "/attn_input/prog_qkv.bin", rw::fuzz::H5Program()
                                                    .dataset(0, T::f32, {1, 8, 2, 2}, small_floats)
                                                    .dataset(1, T::f32, {1, 8, 1, 2}, small_floats)
                                                    .dataset(2, T::f32, {1, 8, 1, 2}, small_floats)
                                                    .dataset(4, T::i32, {1, 8}, le(3, 4))
                                                    .bytes());
  write_bytes(dir + "/forward_input/prog_tokens.bin", rw::fuzz::H5Program()
                                                          .dataset(0, T::i32, {2, 8}, le(65, 4))
                                                          .dataset(2, T::f32, {2, 8}, {0, 0, 0x80, 0x3f})
                                                          .bytes());
  std::vector<uint8_t> offsets = le(0, 8), more = le(2, 8), last = le(6, 8);
  offsets.insert(offsets.end(), more.begin(), more.end());
  offsets.insert(offsets.end(), last.begin(), last.end());
  write_bytes(dir + "/token_dataset/prog_dataset.bin", rw::fuzz::H5Program()
                                                           .dataset(0, T::i32, {6}, le(104, 4))
                                                           .dataset(1, T::i64, {3}, offsets)
                                                           .root_attribute(0, T::i64, le(256, 8))
                                                           .string_attribute(1, 0)
                                                           .bytes());
  // A checkpoint of a model small enough that every tensor is a few floats, checksummed.
  const rw::fuzz::H5Names& names = rw::fuzz::checkpoint_names();
  rw::model::LlamaConfig c;
  c.vocab_size = 4;
  c.hidden_size = 2;
  c.intermediate_size = 2;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 1;
  c.num_key_value_heads = 1;
  c.validate();
  rw::fuzz::H5Program p;
  for (const auto& f : rw::model::config_fields()) {
    if (f.integer) p.root_attribute(index_of(names.attributes, f.name), T::i64, le(static_cast<uint64_t>(c.*f.integer), 8));
    else {
      uint64_t bits;
      const double value = c.*f.real;
      std::memcpy(&bits, &value, 8);
      p.root_attribute(index_of(names.attributes, f.name), T::f64, le(bits, 8));
    }
  }
  p.string_attribute(index_of(names.attributes, "format"), 0).root_attribute(index_of(names.attributes, "format_version"), T::i64, le(1, 8));
  for (const char* f : {"step", "tokens_seen", "stage_index", "seq_len", "world_size", "dp", "sp"})
    p.root_attribute(index_of(names.attributes, f), T::i64, le(1, 8));
  p.string_attribute(index_of(names.attributes, "stage"), 3).string_attribute(index_of(names.attributes, "layout"), 1);
  for (const char* group : {"params/", "optim/m/", "optim/v/"})
    for (const auto& unit : rw::model::parameter_units(c))
      for (const auto& t : unit.tensors) {
        std::vector<uint8_t> dims(t.shape.begin(), t.shape.end());
        p.dataset(index_of(names.datasets, group + t.name), T::f32, dims, small_floats).checksum();
      }
  p.dataset(index_of(names.datasets, "rng/seed"), T::u64, {}, le(7, 8)).dataset(index_of(names.datasets, "data/cursor"), T::u64, {}, le(0, 8));
  write_bytes(dir + "/checkpoint/prog_checkpoint.bin", p.bytes());
  regression_programs(dir);
}

}  // namespace

int main(int argc, char** argv) {
  rw::mpi::Runtime runtime(argc, argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seed_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  for (const char* t : {"attn_input", "forward_input", "token_dataset", "checkpoint"})
    std::filesystem::create_directories(dir + "/" + t);
  attn_seed(dir + "/attn_input/seed_qkv.h5", false);
  attn_seed(dir + "/attn_input/seed_all_datasets.h5", true);
  forward_seed(dir + "/forward_input/seed_tokens.h5", false);
  forward_seed(dir + "/forward_input/seed_all_datasets.h5", true);
  dataset_seed(dir + "/token_dataset/seed_plain.h5", false);
  dataset_seed(dir + "/token_dataset/seed_loss_mask.h5", true);
  const rw::model::LlamaConfig config = micro_config();
  rw::mpi::ProcessGrid grid(1, 1);
  rw::train::FsdpParams params(config, grid);
  params.initialize(7);
  rw::io::CheckpointState state;
  state.stage = "8k";
  state.step = 3;
  state.seq_len = 8;
  state.layout = "zigzag";
  state.world_size = state.dp = state.sp = 1;
  rw::io::save_checkpoint(dir + "/checkpoint/seed_checkpoint.h5", config, params, state);
  rw::io::write_sharded_tensors(dir + "/checkpoint/seed_params.h5", config, params,
                                {{"/params", rw::io::TensorGroup::Source::weights}});
  program_seeds(dir);
  std::printf("make_seed_corpus: seeds written under %s\n", dir.c_str());
  return 0;
}
