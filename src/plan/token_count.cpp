// token_count.cpp
#include "src/plan/token_count.h"

#include <cctype>
#include <limits>

#include "src/common/input_error.h"

namespace rw::plan {

int64_t parse_token_count(const std::string& text, const std::string& option) {
  auto bad = [&]() { return InputError("bad " + option + " '" + text + "' (a positive count such as 4096, 32K or 1M)"); };
  if (text.empty()) throw bad();
  std::string digits = text;
  int64_t scale = 1;
  switch (std::toupper(static_cast<unsigned char>(digits.back()))) {
    case 'K': scale = int64_t(1) << 10; break;
    case 'M': scale = int64_t(1) << 20; break;
    case 'G': scale = int64_t(1) << 30; break;
    default: break;
  }
  if (scale != 1) digits.pop_back();
  if (digits.empty() || digits.size() > 12) throw bad();
  int64_t value = 0;
  for (char ch : digits) {
    if (!std::isdigit(static_cast<unsigned char>(ch))) throw bad();
    value = value * 10 + (ch - '0');
  }
  if (value <= 0 || value > std::numeric_limits<int64_t>::max() / scale) throw bad();
  return value * scale;
}

std::string format_token_count(int64_t count) {
  if (count > 0 && count % (int64_t(1) << 30) == 0) return std::to_string(count >> 30) + "G";
  if (count > 0 && count % (int64_t(1) << 20) == 0) return std::to_string(count >> 20) + "M";
  if (count > 0 && count % (int64_t(1) << 10) == 0) return std::to_string(count >> 10) + "K";
  return std::to_string(count);
}

}  // namespace rw::plan
