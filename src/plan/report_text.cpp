// report_text.cpp: see report_text.h.
#include "src/plan/report_text.h"

#include <cstdarg>
#include <cstdio>

namespace rw::plan {

std::string format_text(const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

std::string format_bytes(double n) {
  constexpr double kMiB = 1024.0 * 1024.0, kGiB = kMiB * 1024.0;
  if (n >= kGiB) return format_text("%.2f GiB", n / kGiB);
  if (n >= kMiB) return format_text("%.1f MiB", n / kMiB);
  if (n >= 1024) return format_text("%.1f KiB", n / 1024);
  return format_text("%.0f B", n);
}

std::string seconds_text(double s) {
  if (s < 1e-3) return format_text("%.1f us", s * 1e6);
  if (s < 1) return format_text("%.2f ms", s * 1e3);
  if (s < 600) return format_text("%.2f s", s);
  return format_text("%.1f min", s / 60);
}

std::string bytes_line(const std::string& name, double n_bytes) {
  return format_text("    %-92s %11s\n", name.c_str(), format_bytes(n_bytes).c_str());
}

}  // namespace rw::plan
