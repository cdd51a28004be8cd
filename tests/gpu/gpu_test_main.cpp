// gpu_test_main.cpp: the main of the real-GPU test binaries (test_gpu_cuda, test_gpu_hip): the
// backend conformance and stream tests on the backend RW_GPU_TEST_BACKEND ("cuda" or "hip").
// Without a usable device (no driver: cudaErrorInsufficientDriver; no GPU: hipErrorNoDevice) it
// prints one line saying why and exits with ctest's skip code, 77.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>

#include "device/backend.h"

int main(int argc, char** argv) {
  const char* name = RW_GPU_TEST_BACKEND;
  const rw::device::BackendInfo* info = rw::device::find_backend(name);
  if (info == nullptr) {
    std::fprintf(stderr, "%s: backend '%s' is not in this build's registry\n", argv[0], name);
    return 1;
  }
  if (!info->available()) {
    std::printf("%s: skipped: no usable %s device (%s)\n", argv[0], name,
                info->unavailable_reason ? info->unavailable_reason().c_str() : "not available");
    return 77;
  }
  setenv("RINGWORLD_TEST_BACKENDS", name, 1);
  return Catch::Session().run(argc, argv);
}
