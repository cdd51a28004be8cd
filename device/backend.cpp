// backend.cpp: the one place that maps a backend name to an implementation.
#include "device/backend.h"

#include "device/cpu/cpu_backend.h"
#include "src/common/input_error.h"

namespace rw::device {

std::vector<std::string> backend_names() { return {"cpu", "cpu-reference"}; }

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "cpu") return std::make_unique<CpuBackend>();
  if (name == "cpu-reference") return std::make_unique<CpuReferenceBackend>();
  throw InputError("unknown device backend '" + name + "' (known: cpu, cpu-reference)");
}

}  // namespace rw::device
