// timer.cpp
#include "src/common/timer.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace rw {

double wall_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

long long peak_rss_bytes() {
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<long long>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

long long available_memory_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char key[64];
  long long kib = 0, found = 0;
  while (std::fscanf(f, "%63s %lld kB", key, &kib) == 2)
    if (std::string(key) == "MemAvailable:") {
      found = kib * 1024;
      break;
    }
  std::fclose(f);
  return found;
}

}  // namespace rw
