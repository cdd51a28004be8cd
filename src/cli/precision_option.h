// precision_option.h: `--precision fp32|bf16` for the commands that take it besides train and
// forward (generate, eval needle, eval visual-needle, bench): the option's value and help, and
// the refusal of a backend that cannot store bf16.
#pragma once
#include <boost/program_options.hpp>

#include <string>

#include "device/backend.h"
#include "src/model/precision.h"

namespace rw::cli {

// --precision's value: default fp32, an unknown name refused when stored (parse_precision's
// message: "unknown precision 'X' (fp32 or bf16)"); `text` gets the name.
boost::program_options::typed_value<std::string>* precision_value(std::string* text);
// --precision's help for the commands that decode (generate, eval needle, eval visual-needle).
extern const char* const kInferencePrecisionHelp;
// --precision's help for bench (train's, less the checkpoints: bench writes none).
extern const char* const kTrainingPrecisionHelp;

// Throws InputError when `backend` cannot run `precision` (bf16 needs bf16 storage); the message
// names the option and the device as the user wrote it.
void check_backend_precision(const device::Backend& backend, const std::string& device_name, model::Precision precision);

}  // namespace rw::cli
