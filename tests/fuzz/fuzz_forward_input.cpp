// fuzz_forward_input.cpp: the input reader of `ringworld forward` (io/forward_io.cpp). The input
// becomes an HDF5 file (h5_builder.h: the file's bytes, or a program that builds one), read for a
// 1-rank ring (contiguous) and as rank 1 of a 2-rank zigzag ring (the default targets then come
// from a shifted read that includes the last token), with a model vocabulary of 256, when /tokens
// declares few enough tokens to allocate (fuzz_support.h). Checks what the reader promises: every
// token id in [0, vocab), every target -1 or in [0, vocab), every loss weight finite and >= 0.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "io/forward_io.h"
#include "io/h5_file.h"
#include "src/common/input_error.h"
#include "tests/fuzz/h5_builder.h"

namespace {

constexpr int64_t kVocab = 256;

void check(const rw::data::LocalBatch& b) {
  for (std::size_t i = 0; i < b.tokens.size(); ++i) {
    const bool ok = b.tokens[i] >= 0 && b.tokens[i] < kVocab && b.targets[i] >= -1 && b.targets[i] < kVocab &&
                    std::isfinite(b.loss_weights[i]) && b.loss_weights[i] >= 0.f;
    if (!ok) {
      std::fprintf(stderr, "fuzz_forward_input: accepted token %d target %d weight %g at %zu\n", b.tokens[i],
                   b.targets[i], b.loss_weights[i], i);
      std::abort();
    }
  }
}

int64_t declared_tokens(const std::string& path) {
  rw::io::silence_hdf5_errors();
  const rw::io::H5File f = rw::io::H5File::open_read(path);
  const rw::io::DatasetInfo info = f.dataset_info("tokens");
  int64_t n = 1;
  for (int64_t d : info.dims)
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return INT64_MAX;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  rw::fuzz::init_mpi_once(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  {
    const std::unique_ptr<rw::fuzz::TempFile> input = rw::fuzz::hdf5_input(data, size, rw::fuzz::forward_input_names());
    if (!input) return 0;
    const rw::fuzz::TempFile& file = *input;
    try {
      if (declared_tokens(file.path()) <= rw::fuzz::kMaxElements) {
        rw::io::ForwardProblem problem;
        check(rw::io::read_forward_input(file.path(), kVocab, rw::Layout::contiguous, 1, 0, &problem));
        if (problem.seq_len % 4 == 0)
          check(rw::io::read_forward_input(file.path(), kVocab, rw::Layout::zigzag, 2, 1, &problem));
      }
    } catch (const rw::InputError& e) {
      rw::fuzz::refused(e);
    }
  }
  rw::fuzz::check_no_open_hdf5_objects("the forward input reader");
  return 0;
}
