// bench_checkpoint.cpp: checkpoint write and read bandwidth against a plain sequential write
// and read of the same number of bytes, measured in the same run on the same file system.
// Run under mpirun (2 ranks by default in `make bench`). The model (default ~134M parameters:
// hidden 768, 12 layers, vocab 32000) is initialised sharded over the ranks; a checkpoint holds
// parameters and both AdamW moments (12 bytes per parameter). Both paths end with fsync, so the
// bytes are on the device, not only in the page cache. Before each read the page cache is
// dropped when this process may (root: /proc/sys/vm/drop_caches), so both reads come from the
// device; otherwise both are served from memory alike (said in a comment line).
//   baseline  rank 0 writes the checkpoint's byte count to one file with write(2) in 8 MiB
//             blocks, fsync; then reads it back with read(2)
//   ckpt      io::save_checkpoint (collective parallel HDF5, checksums, fsync, atomic rename);
//             io::load_checkpoint (checksums verified) on the same ranks
// Table: op, bytes, seconds (median of --reps), GB/s, ratio to the baseline. Target: >= 0.7.
#include <fcntl.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "device/cpu/blas_kernel_select.h"
#include "io/checkpoint.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "perf/bench_common.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/train/fsdp_params.h"

namespace po = boost::program_options;
using namespace rw;

namespace {

double sequential_write_s(const std::string& path, std::size_t n_bytes) {
  std::vector<char> block(8 << 20, 'r');
  const double t0 = wall_seconds();
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  RW_CHECK(fd >= 0, "cannot create " + path);
  for (std::size_t done = 0; done < n_bytes;) {
    const std::size_t n = std::min(block.size(), n_bytes - done);
    const ssize_t w = write(fd, block.data(), n);
    RW_CHECK(w > 0, "write failed on " + path);
    done += static_cast<std::size_t>(w);
  }
  fsync(fd);
  close(fd);
  return wall_seconds() - t0;
}

double sequential_read_s(const std::string& path) {
  std::vector<char> block(8 << 20);
  const double t0 = wall_seconds();
  const int fd = open(path.c_str(), O_RDONLY);
  RW_CHECK(fd >= 0, "cannot open " + path);
  while (read(fd, block.data(), block.size()) > 0) {
  }
  close(fd);
  return wall_seconds() - t0;
}

// sync + drop the page cache (needs root); returns whether it happened.
bool drop_page_cache() {
  sync();
  const int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd < 0) return false;
  const bool ok = write(fd, "3", 1) == 1;
  close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  device::cpu::select_blas_kernel(argc, argv);
  mpi::Runtime runtime(argc, argv);
  const bool is_root = mpi::world_rank() == 0;
  std::string dir = ".";
  int reps = 3, hidden = 768, layers = 12, vocab = 32000;
  bool json = false;
  po::options_description desc("bench_checkpoint options");
  desc.add_options()("help,h", "show this help")("dir", po::value(&dir)->default_value(dir), "where to write")(
      "reps", po::value(&reps)->default_value(reps), "timed repetitions (median)")(
      "hidden", po::value(&hidden)->default_value(hidden), "hidden size")(
      "layers", po::value(&layers)->default_value(layers), "layers")("vocab", po::value(&vocab)->default_value(vocab),
                                                                      "vocabulary")("json", po::bool_switch(&json),
                                                                                    "JSON lines output");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "bench_checkpoint: %s\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    if (is_root) std::cout << desc << "\n";
    return 0;
  }
  model::LlamaConfig config;
  config.vocab_size = vocab;
  config.hidden_size = hidden;
  config.intermediate_size = hidden * 8 / 3 / 64 * 64;
  config.num_hidden_layers = layers;
  config.num_attention_heads = hidden / 64;
  config.num_key_value_heads = hidden / 64;
  mpi::ProcessGrid grid(1, mpi::world_size());
  train::FsdpParams params(config, grid);
  params.initialize(1);
  const std::size_t n_bytes = 12ull * static_cast<std::size_t>(config.parameter_count());

  perf::Report report(json, is_root);
  report.comment(perf::format("checkpoint bandwidth: %d rank(s), model of %lld parameters (%s), %.2f GB per checkpoint",
                              grid.size(), static_cast<long long>(config.parameter_count()), config.describe().c_str(),
                              n_bytes / 1e9));
  report.comment("baseline: one sequential write(2)/read(2) stream of the same bytes on rank 0, fsync'd");
  const std::string plain = dir + "/bench_checkpoint_plain.bin", ckpt = dir + "/bench_checkpoint.h5";
  std::vector<double> w_plain, r_plain, w_ckpt, r_ckpt;
  bool cold = true;
  io::CheckpointState state;
  state.layout = "zigzag";
  for (int r = 0; r < reps; ++r) {
    double t = 0;
    if (is_root) t = sequential_write_s(plain, n_bytes);
    w_plain.push_back(mpi::allreduce_max(t));
    if (is_root) cold = drop_page_cache() && cold;
    mpi::barrier();
    t = is_root ? sequential_read_s(plain) : 0;
    r_plain.push_back(mpi::allreduce_max(t));
    if (is_root) std::remove(plain.c_str());
    mpi::barrier();
    double t0 = wall_seconds();
    io::save_checkpoint(ckpt, config, params, state);
    w_ckpt.push_back(mpi::allreduce_max(wall_seconds() - t0));
    if (is_root) cold = drop_page_cache() && cold;
    mpi::barrier();
    t0 = wall_seconds();
    io::load_checkpoint(ckpt, params, true);
    r_ckpt.push_back(mpi::allreduce_max(wall_seconds() - t0));
  }
  if (is_root) std::remove(ckpt.c_str());
  perf::Table table("checkpoint", {{"op", ""}, {"bytes", "B"}, {"seconds", "s"}, {"bandwidth", "GB/s"}, {"ratio", "x"}});
  const double wp = perf::median(w_plain), rp = perf::median(r_plain), wc = perf::median(w_ckpt), rc = perf::median(r_ckpt);
  auto row = [&](const char* op, double s, double base) {
    table.add_row({perf::Cell::text(op), perf::Cell::integer(static_cast<long long>(n_bytes)), perf::Cell::number(s, 3),
                   perf::Cell::number(n_bytes / s / 1e9, 2), perf::Cell::number(base / s, 2)});
  };
  row("write_plain", wp, wp);
  row("write_ckpt", wc, wp);
  row("read_plain", rp, rp);
  row("read_ckpt", rc, rp);
  table.comment(cold ? "reads from the device: page cache dropped before each read"
                     : "reads from the page cache: could not drop it (not root)");
  table.comment("ratio = baseline time / this time (1.0 = as fast as the plain sequential stream); target >= 0.7");
  report.table(table);
  return 0;
}
