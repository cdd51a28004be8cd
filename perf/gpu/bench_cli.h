// bench_cli.h: what the GPU benchmarks (gpu_bench, gpu_train_bench, gpu_ring_bench) share:
// comma-separated integer options, the median of timings, and JSON written atomically (a
// temporary, then a rename: a run cut short by a time limit leaves its last complete file).
// Header-only: the standalone GPU build (perf/gpu/standalone) compiles each benchmark alone.
#pragma once
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "src/common/input_error.h"

namespace rw::perf {

// "8192,16384" -> {8192, 16384}; each item an integer in [1, 2^30], at least one item.
inline std::vector<int> parse_int_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0 || v > (1L << 30))
      throw InputError("expected a list of positive integers: '" + text + "'");
    out.push_back(static_cast<int>(v));
  }
  if (out.empty()) throw InputError("expected a list of positive integers: '" + text + "'");
  return out;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Writes text to path through path.tmp and a rename; nothing for an empty path.
inline void write_text_atomically(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  {
    std::ofstream f(path + ".tmp");
    f << text;
    if (!f) throw InputError("cannot write " + path + ".tmp");
  }
  if (std::rename((path + ".tmp").c_str(), path.c_str()) != 0) throw InputError("cannot write " + path);
}

}  // namespace rw::perf
