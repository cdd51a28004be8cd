// fused_attention_support.h: what the fused attention tests (test_fused_attention.cpp, forward;
// test_fused_attention_bwd.cpp, backward) share: which backends are GPU kinds, bf16 rounding and
// transfers, and a scoped environment variable (the kernels' RINGWORLD_GPU_ATTN_FWD / _BWD switches
// are read when a backend is created).
#pragma once
#include <cstdlib>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/dtype.h"

namespace rw::test {

inline bool is_gpu_kind(const std::string& name) {
  return name == "cuda" || name == "hip" || name == "cuda-emu" || name == "hip-emu";
}

inline float round_bf16(float x) { return device::float_from_bf16(device::bf16_from_float(x)); }

inline std::vector<float> round_bf16(std::vector<float> x) {
  for (auto& y : x) y = round_bf16(y);
  return x;
}

inline std::vector<float> download_f32(const device::DeviceArray<float>& a) {
  std::vector<float> host(a.size());
  a.download(host.data());
  return host;
}

inline void upload_bf16(device::DeviceArray<device::bf16_t>& dst, const std::vector<float>& values) {
  std::vector<device::bf16_t> bits(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) bits[i] = device::bf16_from_float(values[i]);
  dst.upload(bits.data());
}

// Sets an environment variable for the scope, restoring the old value (or its absence) after.
struct ScopedEnv {
  std::string name, old;
  bool had;
  ScopedEnv(const char* n, const char* value) : name(n) {
    const char* o = std::getenv(n);
    had = o != nullptr;
    if (had) old = o;
    setenv(n, value, 1);
  }
  ~ScopedEnv() {
    if (had)
      setenv(name.c_str(), old.c_str(), 1);
    else
      unsetenv(name.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
};

}  // namespace rw::test
