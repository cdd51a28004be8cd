// fuzz_attn_input.cpp: the input reader of `ringworld attn` (io/attn_io.cpp). The input becomes
// an HDF5 file (h5_builder.h: the file's bytes, or a program that builds one), which is opened
// and inspected (datasets, dtypes, ranks, shapes) and, when the declared problem is small enough
// to allocate (fuzz_support.h), read as this rank's shard of a 1-rank contiguous ring and of
// rank 1 of a 2-rank zigzag ring.
#include <cstdint>
#include <memory>
#include <string>

#include "io/attn_io.h"
#include "src/common/input_error.h"
#include "tests/fuzz/h5_builder.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  rw::fuzz::init_mpi_once(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  {
    const std::unique_ptr<rw::fuzz::TempFile> input = rw::fuzz::hdf5_input(data, size, rw::fuzz::attn_input_names());
    if (!input) return 0;
    const rw::fuzz::TempFile& file = *input;
    try {
      rw::io::AttnInputFile input(file.path());
      const rw::io::AttnProblem p = input.inspect(/*need_dout=*/false);
      int64_t tokens = 0, elements = 0;
      const int64_t width = (p.heads > p.kv_heads ? p.heads : p.kv_heads) * p.head_dim;
      if (!__builtin_mul_overflow(p.batch, p.seq_len, &tokens) && !__builtin_mul_overflow(tokens, width, &elements) &&
          elements <= rw::fuzz::kMaxElements) {
        input.read_shard(p, rw::local_token_runs(rw::Layout::contiguous, p.seq_len, 1, 0));
        if (p.seq_len % 4 == 0) input.read_shard(p, rw::local_token_runs(rw::Layout::zigzag, p.seq_len, 2, 1));
      }
    } catch (const rw::InputError& e) {
      rw::fuzz::refused(e);
    }
  }
  rw::fuzz::check_no_open_hdf5_objects("the attn input reader");
  return 0;
}
