// number_format.cpp
#include "src/common/number_format.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace rw {

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // The fewest significant digits that read back as the same double (17 always do). printf and
  // strtod rather than std::to_chars, whose floating-point form needs GCC 11: clusters' compilers
  // are often older.
  char buffer[64];
  if (std::fabs(value) < 1e16 && value == std::trunc(value)) {  // whole numbers as integers: 10000, not 1e4
    std::snprintf(buffer, sizeof buffer, "%.0f", value);
    return buffer;
  }
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  std::string text(buffer);
  // "1e-05" -> "1e-5", "1e+20" -> "1e20": the exponent as one would type it.
  const std::size_t e = text.find('e');
  if (e == std::string::npos) return text;
  std::string mantissa = text.substr(0, e), exponent = text.substr(e + 1);
  std::string sign;
  if (!exponent.empty() && (exponent[0] == '+' || exponent[0] == '-')) {
    if (exponent[0] == '-') sign = "-";
    exponent.erase(0, 1);
  }
  const std::size_t first = exponent.find_first_not_of('0');
  exponent = first == std::string::npos ? "0" : exponent.substr(first);
  return mantissa + "e" + sign + exponent;
}

}  // namespace rw
