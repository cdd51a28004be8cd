// count_text.cpp
#include "src/common/count_text.h"

#include <cctype>
#include <limits>

namespace rw {

bool parse_count(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  std::string digits = text;
  int64_t scale = 1;
  switch (digits.back()) {
    case 'K': case 'k': scale = int64_t(1) << 10; break;
    case 'M': case 'm': scale = int64_t(1) << 20; break;
    case 'G': case 'g': scale = int64_t(1) << 30; break;
    default: break;
  }
  if (scale != 1) digits.pop_back();
  if (digits.empty()) return false;
  const int64_t limit = std::numeric_limits<int64_t>::max() / scale;
  int64_t value = 0;
  for (char ch : digits) {
    if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
    if (value > (limit - (ch - '0')) / 10) return false;  // value * 10 + digit would pass the limit
    value = value * 10 + (ch - '0');
  }
  *out = value * scale;
  return true;
}

}  // namespace rw
