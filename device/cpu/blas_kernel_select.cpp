// blas_kernel_select.cpp
#include "device/cpu/blas_kernel_select.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace rw::device::cpu {
namespace {

bool is_pre_avx2_kernel(const char* name) {
  for (const char* old : {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai",
                          "Coppermine", "Northwood", "Banias", "Opteron", "Barcelona", "Bobcat", "Sandybridge"})
    if (std::strcmp(name, old) == 0) return true;
  return false;
}

}  // namespace

std::string blas_kernel_name() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

void select_blas_kernel(int argc, char** argv) {
  (void)argc;
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("RINGWORLD_BLAS_REEXEC")) return;
  const char* name = openblas_get_corename();
  if (!name || !is_pre_avx2_kernel(name)) return;
  const char* family = nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    family = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    family = "Haswell";
  if (!family) return;
  setenv("OPENBLAS_CORETYPE", family, 1);
  setenv("RINGWORLD_BLAS_REEXEC", "1", 1);  // never loop
  execv("/proc/self/exe", argv);
  // exec failed: carry on with the slow kernel rather than fail.
}

}  // namespace rw::device::cpu
