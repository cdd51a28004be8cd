// backends_under_test.h: which backends the device tests run (test_backend_conformance.cpp,
// test_backend_streams.cpp): every available one, or the comma-separated names in the environment
// variable RINGWORLD_TEST_BACKENDS. ctest uses it to run the slow emulated GPU backends (cuda-emu,
// hip-emu) and the real GPU ones (cuda, hip: tests/gpu/gpu_test_main.cpp) as their own tests.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "device/backend.h"

namespace rw::test {

inline std::vector<std::string> backends_under_test() {
  const std::vector<std::string> available = device::available_backend_names();
  const char* text = std::getenv("RINGWORLD_TEST_BACKENDS");
  if (!text || !*text) return available;
  std::vector<std::string> chosen;
  std::string name;
  for (const char* p = text;; ++p) {
    if (*p == ',' || *p == '\0') {
      if (!name.empty()) chosen.push_back(name);
      name.clear();
      if (*p == '\0') break;
    } else {
      name += *p;
    }
  }
  return chosen;  // a name that is not available fails in create_backend, naming it
}

}  // namespace rw::test
