// precision.cpp: see precision.h.
#include "src/model/precision.h"

#include "src/common/input_error.h"

namespace rw::model {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  throw InputError("unknown precision '" + name + "' (fp32 or bf16)");
}

const char* precision_name(Precision precision) { return precision == Precision::bf16 ? "bf16" : "fp32"; }

}  // namespace rw::model
