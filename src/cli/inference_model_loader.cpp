// inference_model_loader.cpp: see inference_model_loader.h.
#include "src/cli/inference_model_loader.h"

#include "io/input_file.h"
#include "io/params_io.h"
#include "mpi/runtime.h"
#include "src/common/input_error.h"
#include "src/model/transformer.h"

namespace rw::cli {

void InferenceModel::open(const std::string& checkpoint, const std::string& device_name, model::Precision precision) {
  checkpoint_ = checkpoint;
  precision_ = precision;
  backend_ = device::make_backend(device_name);
  check_backend_precision(*backend_, device_name, precision);
  io::check_input_file(checkpoint, "checkpoint");
  config_ = io::read_model_config(checkpoint);
}

std::string InferenceModel::load_params(mpi::ProcessGrid& grid, bool resident) {
  exec_ = device::ExecContext::on_default_stream(*backend_);
  train::FsdpOptions fsdp = train::fsdp_options_for(precision_);  // bf16: the bf16 working copy, gathered
  if (resident) fsdp.gather_buffers = static_cast<int>(model::parameter_units(config_).size());  // every unit stays gathered
  params_ = std::make_unique<train::FsdpParams>(config_, grid, exec_, fsdp);
  std::string error;
  try {
    io::read_param_shards(checkpoint_, *params_);
  } catch (const InputError& e) {
    error = e.what();
  }
  return mpi::agree_on_error(error);
}

}  // namespace rw::cli
