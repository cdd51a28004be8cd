// precision_option.cpp: see precision_option.h.
#include "src/cli/precision_option.h"

#include "src/common/input_error.h"

namespace rw::cli {

boost::program_options::typed_value<std::string>* precision_value(std::string* text) {
  if (text->empty()) *text = "fp32";
  return boost::program_options::value(text)->default_value(*text)->notifier(
      [](const std::string& v) { model::parse_precision(v); });
}

const char* const kInferencePrecisionHelp =
    "fp32 | bf16: bf16 weights copy, activations and KV cache (half its bytes); fp32 residual, softmax statistics, "
    "partial-output merge and logits";
const char* const kTrainingPrecisionHelp =
    "fp32 | bf16: bf16 weights copy, GEMM and attention inputs on the device; fp32 master weights, AdamW moments, "
    "gradients, residual stream, softmax statistics and loss";

void check_backend_precision(const device::Backend& backend, const std::string& device_name, model::Precision precision) {
  if (precision == model::Precision::bf16 && !backend.capabilities().bf16_storage)
    throw InputError("--precision bf16: the " + device_name + " backend has no bf16 storage; use --precision fp32");
}

}  // namespace rw::cli
