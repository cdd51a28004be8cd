// inference_model_loader.h: the model of the inference commands (`generate`, `eval needle`,
// `eval visual-needle`): a checkpoint's (or parameter file's) config and parameters on one
// backend, in one precision, loaded in two steps so that each command can add its own checks
// to the first and no rank ever waits alone:
//   open()         what one rank can check alone, no collective: the backend (--device), its
//                  bf16 storage when --precision bf16, the checkpoint file and its config.
//                  Throws InputError; call it inside the command's own checks, before the
//                  command agrees on errors across ranks (mpi::agree_on_error).
//   load_params()  collective over the grid: the FSDP parameters in the precision's gather
//                  dtype (train::fsdp_options_for: bf16 gathers the bf16 working copy), every
//                  unit kept gathered when `resident` (decoding: no weight moves per token),
//                  read from the checkpoint, the ranks agreeing on any error.
// The --precision option itself: precision_option.h.
#pragma once
#include <memory>
#include <string>

#include "device/backend.h"
#include "device/exec_context.h"
#include "mpi/process_grid.h"
#include "src/cli/precision_option.h"
#include "src/model/llama_config.h"
#include "src/model/precision.h"
#include "src/train/fsdp_params.h"

namespace rw::cli {

class InferenceModel {
 public:
  void open(const std::string& checkpoint, const std::string& device_name, model::Precision precision);
  // Returns the error every rank agreed on ("" when loaded). Needs open() first.
  std::string load_params(mpi::ProcessGrid& grid, bool resident);

  device::Backend& backend() { return *backend_; }
  const model::LlamaConfig& config() const { return config_; }
  model::Precision precision() const { return precision_; }
  const device::ExecContext& exec() const { return exec_; }  // after load_params
  train::FsdpParams& params() { return *params_; }           // after load_params

 private:
  std::string checkpoint_;
  model::Precision precision_ = model::Precision::fp32;
  std::unique_ptr<device::Backend> backend_;
  model::LlamaConfig config_;
  device::ExecContext exec_;
  std::unique_ptr<train::FsdpParams> params_;
};

}  // namespace rw::cli
