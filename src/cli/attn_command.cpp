// attn_command.cpp: `ringworld attn`: exact ring attention on tensors read from HDF5, for
// validating the operator against any framework. Each rank reads and writes only its shard.
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "device/backend.h"
#include "io/attn_io.h"
#include "io/input_file.h"
#include "mpi/ring_exchange.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "mpi/watchdog.h"
#include "src/attention/layout.h"
#include "src/attention/ring_attention.h"
#include "src/cli/commands.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

struct AttnOptions {
  std::string input, output, layout = "zigzag", device = "cpu";
  bool causal = false, backward = false, quiet = false;
  int block_q = 256, block_k = 256;
  double timeout_s = 900;
};

const char* kAttnHelp =
    "usage: mpirun -np N ringworld attn --input IN.h5 --output OUT.h5 [options]\n"
    "\n"
    "IN.h5:  q float32 [batch, seq, heads, head_dim]; k, v float32 [batch, seq, kv_heads, head_dim];\n"
    "        optional dout (like q; needed by --backward), segment_ids and positions int32 [batch, seq]\n"
    "        (defaults: one segment; position = token index).\n"
    "OUT.h5: out (like q), lse float32 [batch, heads, seq] (natural log, scale 1/sqrt(head_dim));\n"
    "        with --backward dq, dk, dv (like q, k, v). Original token order.\n"
    "seq must divide by N (by 2N for zigzag).\n";

}  // namespace

int run_attn(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  AttnOptions o;
  po::options_description desc("options");
  desc.add_options()
      ("help,h", "show this help")
      ("input", po::value(&o.input), "input HDF5 file (required)")
      ("output", po::value(&o.output), "output HDF5 file (required; written atomically)")
      ("causal", po::bool_switch(&o.causal), "causal mask by position (pos_k <= pos_q)")
      ("backward", po::bool_switch(&o.backward), "also compute dq, dk, dv from dout")
      ("layout", po::value(&o.layout)->default_value(o.layout), "contiguous | striped | zigzag")
      ("block-q", count(&o.block_q)->min(1)->default_value(o.block_q), "query rows per tile")
      ("block-k", count(&o.block_k)->min(1)->default_value(o.block_k), "key rows per tile")
      ("device", po::value(&o.device)->default_value(o.device), device_option_help().c_str())
      ("timeout", number(&o.timeout_s)->min(0)->default_value(o.timeout_s),
       "seconds a rank may go without progress before the watchdog reports where every rank is and ends the job (0: never)")
      ("quiet", po::bool_switch(&o.quiet), "print nothing on success");
  po::variables_map vm;
  try {
    store_command_line(parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kAttnHelp << "\n" << desc << "\n";
      return 0;
    }
    if (o.input.empty()) throw InputError("--input is required");
    if (o.output.empty()) throw InputError("--output is required");
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld attn: error: %s (see ringworld attn --help)\n", e.what());
    return 2;
  }

  // The ring follows the node topology (ranks of a node are neighbours); this rank's shard is
  // its ring position. The watchdog ends the job with a report if any rank stops progressing.
  mpi::ProcessGrid grid(1, mpi::world_size(), o.timeout_s > 0 ? 2 * o.timeout_s + 30 : 0);
  mpi::Watchdog watchdog(o.timeout_s);
  const int n_ranks = grid.sp(), rank = grid.sp_rank();
  Layout layout = Layout::zigzag;
  io::AttnProblem problem;
  std::unique_ptr<io::AttnInputFile> input;
  std::unique_ptr<device::Backend> backend;
  std::string error;
  try {
    layout = parse_layout(o.layout);
    backend = device::make_backend(o.device);
    io::check_input_file(o.input, "input");
    io::check_output_path(o.output);
    input = std::make_unique<io::AttnInputFile>(o.input);
    problem = input->inspect(o.backward);
    check_ring_split(layout, problem.seq_len, n_ranks);
  } catch (const InputError& e) {
    error = e.what();
  }
  error = mpi::agree_on_error(error);
  if (!error.empty()) {
    if (is_root) std::fprintf(stderr, "ringworld attn: error: %s\n", error.c_str());
    return 1;
  }

  const auto runs = local_token_runs(layout, problem.seq_len, n_ranks, rank);
  io::AttnShard host;
  try {
    host = input->read_shard(problem, runs);  // collective; int64 values outside int32 are refused after it
  } catch (const InputError& e) {
    error = e.what();
  }
  input.reset();
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root) std::fprintf(stderr, "ringworld attn: error: %s\n", error.c_str());
    return 1;
  }
  const int n_local = static_cast<int>(local_token_count(problem.seq_len, n_ranks));

  device::Backend& dev = *backend;
  device::DeviceArray<float> q(dev, host.q.size()), k(dev, host.k.size()), v(dev, host.v.size());
  device::DeviceArray<int32_t> pos(dev, host.pos.size()), seg(dev, host.seg.size());
  q.upload(host.q.data());
  k.upload(host.k.data());
  v.upload(host.v.data());
  pos.upload(host.pos.data());
  seg.upload(host.seg.data());

  RingShard shard;
  shard.batch = static_cast<int>(problem.batch);
  shard.n_local = n_local;
  shard.heads = static_cast<int>(problem.heads);
  shard.kv_heads = static_cast<int>(problem.kv_heads);
  shard.head_dim = static_cast<int>(problem.head_dim);
  shard.q = q.data();
  shard.k = k.data();
  shard.v = v.data();
  shard.pos = pos.data();
  shard.seg = seg.data();

  mpi::RingExchange& ring = grid.ring();
  RingOptions ring_options;
  ring_options.causal = o.causal;
  ring_options.tiling = {o.block_q, o.block_k};
  RingAttention attention(dev, ring, ring_options);

  const std::size_t lse_count = static_cast<std::size_t>(problem.batch) * problem.heads * n_local;
  device::DeviceArray<float> out(dev, host.q.size()), lse(dev, lse_count);
  mpi::barrier();
  const double t0 = wall_seconds();
  attention.forward(shard, out.data(), lse.data());
  const double t_fwd = wall_seconds() - t0;

  HostVector<float> out_h(out.size()), lse_h(lse.size()), dq_h, dk_h, dv_h;
  out.download(out_h.data());
  lse.download(lse_h.data());
  io::AttnOutputShard result{out_h.data(), lse_h.data()};
  double t_bwd = 0;
  if (o.backward) {
    device::DeviceArray<float> dout(dev, host.dout.size()), dq(dev, host.q.size()), dk(dev, host.k.size()),
        dv(dev, host.v.size());
    dout.upload(host.dout.data());
    const double t1 = wall_seconds();
    attention.backward(shard, out.data(), dout.data(), lse.data(), dq.data(), dk.data(), dv.data());
    t_bwd = wall_seconds() - t1;
    dq_h.resize(dq.size());
    dk_h.resize(dk.size());
    dv_h.resize(dv.size());
    dq.download(dq_h.data());
    dk.download(dk_h.data());
    dv.download(dv_h.data());
    result.dq = dq_h.data();
    result.dk = dk_h.data();
    result.dv = dv_h.data();
  }
  const double fwd_max = mpi::allreduce_max(t_fwd), bwd_max = mpi::allreduce_max(t_bwd);
  try {
    io::write_attn_output(o.output, problem, runs, result);
  } catch (const InputError& e) {
    if (is_root) std::fprintf(stderr, "ringworld attn: error: %s\n", e.what());
    return 1;
  }
  if (is_root && !o.quiet) {
    std::printf("ringworld attn: %d rank(s), %s layout, %s, batch %lld seq %lld heads %lld/%lld head_dim %lld\n",
                n_ranks, layout_name(layout).c_str(), o.causal ? "causal" : "full",
                static_cast<long long>(problem.batch), static_cast<long long>(problem.seq_len),
                static_cast<long long>(problem.heads), static_cast<long long>(problem.kv_heads),
                static_cast<long long>(problem.head_dim));
    std::string times = "  forward " + std::to_string(fwd_max) + " s";
    if (o.backward) times += ", backward " + std::to_string(bwd_max) + " s";
    std::printf("%s (slowest rank); wrote %s\n", times.c_str(), o.output.c_str());
  }
  return 0;
}

}  // namespace rw::cli
