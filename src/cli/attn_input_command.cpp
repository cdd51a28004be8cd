// attn_input_command.cpp: `ringworld attn-input`: writes a random input file for `ringworld
// attn` (for trying the tool, benchmarks and the demo). Values depend only on the seed and each
// element's global index, so any number of ranks writes the same file; each rank generates and
// writes only its own tokens.
#include <boost/program_options.hpp>

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

#include "io/attn_io.h"
#include "mpi/runtime.h"
#include "src/attention/layout.h"
#include "src/cli/commands.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/common/input_error.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

// Uniform in [-1, 1) from a 64-bit hash of (seed, tensor, index): splitmix64's finaliser.
float hashed_uniform(uint64_t seed, uint64_t tensor, uint64_t index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + tensor * 0xd1b54a32d192ed03ull + index;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>((z >> 40) * (2.0 / 16777216.0) - 1.0);
}

}  // namespace

int run_attn_input(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string output;
  int64_t batch = 1, seq = 4096, heads = 8, kv_heads = 8, head_dim = 64, documents = 1;
  uint64_t seed = 1;
  bool no_dout = false;
  po::options_description desc("options");
  desc.add_options()
      ("help,h", "show this help")
      ("output", po::value(&output), "file to write (required; written atomically)")
      ("batch", number(&batch)->min(1)->max(INT32_MAX)->default_value(batch), "sequences")
      ("seq", count(&seq)->min(1)->max(INT32_MAX)->default_value(seq), "tokens per sequence (K/M suffixes)")
      ("heads", number(&heads)->min(1)->max(65536)->default_value(heads), "query heads")
      ("kv-heads", number(&kv_heads)->min(1)->max(65536)->default_value(kv_heads), "key/value heads")
      ("head-dim", number(&head_dim)->min(1)->max(65536)->default_value(head_dim), "head dimension")
      ("documents", number(&documents)->min(1)->default_value(documents),
       "documents packed per sequence (>1 writes segment_ids and positions)")
      ("seed", number(&seed)->default_value(seed), "random seed")
      ("no-dout", po::bool_switch(&no_dout), "omit dout (forward-only input)");
  po::variables_map vm;
  try {
    store_command_line(parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << "usage: [mpirun -np N] ringworld attn-input --output IN.h5 [options]\n\n" << desc << "\n";
      return 0;
    }
    if (output.empty()) throw InputError("--output is required");
    if (documents > seq)
      throw InputError("--documents (" + std::to_string(documents) + ") must be at most --seq (" + std::to_string(seq) + ")");
    if (heads % kv_heads)
      throw InputError("--heads (" + std::to_string(heads) + ") must be a multiple of --kv-heads (" + std::to_string(kv_heads) + ")");
    check_ring_split(Layout::contiguous, seq, mpi::world_size());
    io::check_output_path(output);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld attn-input: error: %s\n", e.what());
    return 2;
  }
  const int n = mpi::world_size(), rank = mpi::world_rank();
  const auto runs = local_token_runs(Layout::contiguous, seq, n, rank);
  const int64_t first = runs[0].start, n_local = runs[0].count;
  io::AttnProblem p{batch, seq, heads, kv_heads, head_dim, !no_dout, documents > 1, documents > 1};
  io::AttnShard s;
  auto fill = [&](HostVector<float>& x, uint64_t tensor, int64_t width) {
    x.resize(static_cast<std::size_t>(batch * n_local * width));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < n_local; ++t)
        for (int64_t c = 0; c < width; ++c)
          x[(b * n_local + t) * width + c] = hashed_uniform(seed, tensor, ((b * seq) + first + t) * width + c);
  };
  fill(s.q, 1, heads * head_dim);
  fill(s.k, 2, kv_heads * head_dim);
  fill(s.v, 3, kv_heads * head_dim);
  if (!no_dout) fill(s.dout, 4, heads * head_dim);
  if (documents > 1) {  // document starts: seq/documents apart, jittered by up to a quarter of that
    s.pos.resize(static_cast<std::size_t>(batch * n_local));
    s.seg.resize(s.pos.size());
    const int64_t spacing = seq / documents;
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<int64_t> starts{0};
      for (int64_t d = 1; d < documents; ++d) {
        float u = 0.5f * (hashed_uniform(seed, 5, b * documents + d) + 1.f);
        int64_t jitter = static_cast<int64_t>(u * (spacing / 4));
        starts.push_back(std::max(starts.back() + 1, d * spacing - spacing / 8 + jitter));
      }
      std::size_t doc = 0;
      for (int64_t t = 0; t < first + n_local; ++t) {
        while (doc + 1 < starts.size() && t >= starts[doc + 1]) ++doc;
        if (t < first) continue;
        s.seg[b * n_local + t - first] = static_cast<int32_t>(doc);
        s.pos[b * n_local + t - first] = static_cast<int32_t>(t - starts[doc]);
      }
    }
  }
  try {
    io::write_attn_input(output, p, runs, s);
  } catch (const InputError& e) {
    if (is_root) std::fprintf(stderr, "ringworld attn-input: error: %s\n", e.what());
    return 1;
  }
  if (is_root)
    std::printf("ringworld attn-input: wrote %s (batch %lld, seq %lld, heads %lld/%lld, head_dim %lld, %lld document(s))\n",
                output.c_str(), static_cast<long long>(batch), static_cast<long long>(seq),
                static_cast<long long>(heads), static_cast<long long>(kv_heads), static_cast<long long>(head_dim),
                static_cast<long long>(documents));
  return 0;
}

}  // namespace rw::cli
