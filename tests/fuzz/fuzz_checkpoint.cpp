// fuzz_checkpoint.cpp: checkpoints and parameter files (io/checkpoint.cpp, io/params_io.cpp) as
// `ringworld ckpt info` reads them. The input becomes an HDF5 file (h5_builder.h), which is
// listed, recognised, its state and model config read and validated, and, when the config's
// parameters are few enough to allocate (fuzz_support.h), every tensor loaded into a 1-rank FSDP
// grid with its shape and checksum verified (checkpoints with the AdamW moments; parameter files).
#include <cstdint>
#include <memory>
#include <string>

#include "io/checkpoint.h"
#include "io/params_io.h"
#include "mpi/process_grid.h"
#include "src/common/input_error.h"
#include "src/train/fsdp_params.h"
#include "tests/fuzz/h5_builder.h"

namespace {

rw::mpi::ProcessGrid* grid = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  rw::fuzz::init_mpi_once(argc, argv);
  grid = new rw::mpi::ProcessGrid(1, 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  {
    const std::unique_ptr<rw::fuzz::TempFile> input = rw::fuzz::hdf5_input(data, size, rw::fuzz::checkpoint_names());
    if (!input) return 0;
    const rw::fuzz::TempFile& file = *input;
    try {
      (void)rw::io::describe_checkpoint(file.path());
      const bool is_checkpoint = rw::io::is_checkpoint_file(file.path());
      rw::model::LlamaConfig config;
      if (is_checkpoint) (void)rw::io::read_checkpoint_state(file.path(), &config);
      else config = rw::io::read_model_config(file.path());
      (void)config.describe();
      if (config.parameter_count() <= rw::fuzz::kMaxElements) {
        rw::train::FsdpParams params(config, *grid);
        if (is_checkpoint) rw::io::load_checkpoint(file.path(), params, /*with_optimizer=*/true);
        else rw::io::read_param_shards(file.path(), params);
      }
    } catch (const rw::InputError& e) {
      rw::fuzz::refused(e);
    }
  }
  rw::fuzz::check_no_open_hdf5_objects("the checkpoint reader");
  return 0;
}
