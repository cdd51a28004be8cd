// fuzz_weight_files.cpp: the single-process HDF5 readers of the model tools: parameter files as
// the exporter reads them (io/param_file_reader.cpp: config, attributes, every tensor with its
// checksum; model_import.h's read_imported_attributes), the VQGAN weight file VQ.h5
// (src/vision/vqgan_weights.cpp on io/tensor_h5.cpp) and the codes file CODES.h5
// (io/vqgan_codes.cpp, on one rank). The input becomes an HDF5 file (h5_builder.h; names of all
// three formats), and every reader runs on it. Sizes a valid file may declare are capped as in
// fuzz_support.h (kMaxElements) before reading the data they declare.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "io/model_import.h"
#include "io/param_file_reader.h"
#include "io/vqgan_codes.h"
#include "src/common/input_error.h"
#include "src/common/llama_config.h"
#include "src/vision/vqgan_weights.h"
#include "tests/fuzz/h5_builder.h"

namespace {

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_weight_files: %s\n", what.c_str());
  std::abort();
}

void param_file(const std::string& path) {
  try {
    (void)rw::io::read_imported_attributes(path);
    const rw::io::ParamFileReader reader(path);
    (void)reader.has_link("vision");
    const rw::model::LlamaConfig c = reader.model_config();
    if (c.parameter_count() > rw::fuzz::kMaxElements) return;
    for (const auto& unit : rw::model::parameter_units(c))
      for (const auto& t : unit.tensors) {
        const std::vector<float> v = reader.read_tensor("/params/" + t.name, t.shape);
        if (static_cast<int64_t>(v.size()) != t.count()) finding("read_tensor returned the wrong size for " + t.name);
      }
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
}

void vqgan_weights(const std::string& path) {
  try {
    const rw::vision::VqganConfig c = rw::vision::read_vqgan_config(path);
    if (rw::vision::vqgan_parameter_counts(c).total() > rw::fuzz::kMaxElements) return;
    const rw::vision::VqganWeights w = rw::vision::read_vqgan_weights(path);
    if (static_cast<int64_t>(w.values.size()) != rw::vision::vqgan_parameter_counts(w.config).total())
      finding("read_vqgan_weights returned the wrong number of values");
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
}

void vqgan_codes(const std::string& path) {
  try {
    const rw::io::VqganCodesHeader h = rw::io::read_vqgan_codes_header(path);
    if (static_cast<int64_t>(h.sources.size()) != h.frames) finding("the header's sources do not match its frames");
    int64_t per_frame = 0, total = 0;
    if (__builtin_mul_overflow(h.size, h.size, &per_frame) || __builtin_mul_overflow(per_frame, h.frames, &total) ||
        total > rw::fuzz::kMaxElements)
      return;
    const std::vector<int32_t> codes = rw::io::read_vqgan_codes(path, h, rw::TokenRun{0, h.frames, 1});
    for (const int32_t code : codes)
      if (code < 0 || code >= h.codebook_size) finding("read_vqgan_codes returned code " + std::to_string(code));
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  rw::fuzz::init_mpi_once(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  {
    const std::unique_ptr<rw::fuzz::TempFile> input = rw::fuzz::hdf5_input(data, size, rw::fuzz::weight_file_names());
    if (!input) return 0;
    param_file(input->path());
    rw::fuzz::check_no_open_hdf5_objects("the parameter file reader");
    vqgan_weights(input->path());
    rw::fuzz::check_no_open_hdf5_objects("the VQGAN weight reader");
    vqgan_codes(input->path());
  }
  rw::fuzz::check_no_open_hdf5_objects("the VQGAN codes reader");
  return 0;
}
