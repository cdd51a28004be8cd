// fuzz_token_dataset.cpp: token dataset files (io/token_dataset.cpp) and the packed loader that
// trains on them (src/data/packed_loader.cpp). The input becomes an HDF5 file (h5_builder.h),
// which is opened (every validation of the reader), every document read while their total stays
// allocatable (fuzz_support.h), then two global batches packed in each mode. Checks what the
// reader and the loader promise: document lengths sum to n_tokens, every packed token is in
// [0, vocab).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "io/token_dataset.h"
#include "src/common/input_error.h"
#include "src/data/packed_loader.h"
#include "tests/fuzz/h5_builder.h"

namespace {

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_token_dataset: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  rw::fuzz::init_mpi_once(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  {
    const std::unique_ptr<rw::fuzz::TempFile> input = rw::fuzz::hdf5_input(data, size, rw::fuzz::token_dataset_names());
    if (!input) return 0;
    const rw::fuzz::TempFile& file = *input;
    try {
      rw::io::TokenDatasetReader reader(file.path());
      const rw::io::TokenDatasetInfo& info = reader.info();
      int64_t total = 0;
      for (int64_t d = 0; d < info.n_docs; ++d) total += reader.doc_length(d);
      if (total != info.n_tokens) finding("document lengths do not sum to n_tokens");
      if (info.n_tokens <= rw::fuzz::kMaxElements) {
        std::vector<int32_t> tokens;
        std::vector<uint8_t> mask;
        for (int64_t d = 0; d < info.n_docs; ++d) {
          reader.read_document(d, &tokens, &mask);
          if (static_cast<int64_t>(tokens.size()) != reader.doc_length(d) || mask.size() != tokens.size())
            finding("read_document returned the wrong length");
        }
        for (const bool masked : {true, false}) {
          rw::data::PackedLoaderOptions options;
          options.seq_len = 16;
          options.global_sequences = 2;
          options.masked = masked;
          rw::data::PackedLoader loader(file.path(), options, info.vocab_size);
          for (int step = 0; step < 2; ++step) {
            const rw::data::GlobalBatch batch = loader.next_global();
            for (int32_t t : batch.tokens)
              if (t < 0 || t >= info.vocab_size) finding("the loader produced token " + std::to_string(t));
          }
        }
      }
    } catch (const rw::InputError& e) {
      rw::fuzz::refused(e);
    }
  }
  rw::fuzz::check_no_open_hdf5_objects("the token dataset reader");
  return 0;
}
