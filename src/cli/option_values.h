// option_values.h: numeric options with their allowed range, declared where the option is.
//   ("steps", number(&steps)->min(1)->default_value(100), "optimizer steps")
//   ("lr", number(&lr)->min(0)->default_value(1e-3), "peak learning rate")
//   ("beta1", number(&beta1)->min(0)->below(1)->default_value(0.9), "AdamW beta1")
//   ("seq-len", count(&seq_len)->min(1)->default_value(1024), "tokens per sequence")
// A value outside the range, not finite, or not a number of the type is refused when the
// command line or INI file is stored, with one message naming the option and the range:
//   option '--lr' must be a finite number >= 0 (got 'nan')
// count() also takes K/M/G suffixes (src/common/count_text.h). default_value() shows numbers as
// typed (0.9, not 0.90000000000000002; src/common/number_format.h).
// Works with boost::program_options::store and with parse_config_file (src/cli/config_file.h).
#pragma once
#include <boost/program_options.hpp>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "src/common/count_text.h"
#include "src/common/number_format.h"

namespace rw::cli {

template <class T>
class NumberValue : public boost::program_options::typed_value<T> {
  static_assert(std::is_arithmetic_v<T>, "NumberValue is for numbers");

 public:
  NumberValue(T* target, bool count_suffixes)
      : boost::program_options::typed_value<T>(target), count_suffixes_(count_suffixes) {}

  NumberValue* min(T v) { return set_low(v, false); }    // value >= v
  NumberValue* above(T v) { return set_low(v, true); }   // value > v
  NumberValue* max(T v) { return set_high(v, false); }   // value <= v
  NumberValue* below(T v) { return set_high(v, true); }  // value < v
  // The default, shown as typed in --help.
  NumberValue* default_value(const T& v) {
    boost::program_options::typed_value<T>::default_value(v, text_of(v));
    return this;
  }

  // "a finite number in [0, 1)", "an integer >= 1", "a token count >= 1 (4096, 32K, 1M)".
  std::string requirement() const {
    std::string kind = count_suffixes_ ? "a count" : std::is_integral_v<T> ? "an integer" : "a finite number";
    std::string range;
    if (has_low_ && has_high_)
      range = std::string(" in ") + (low_open_ ? "(" : "[") + text_of(low_) + ", " + text_of(high_) + (high_open_ ? ")" : "]");
    else if (has_low_)
      range = std::string(low_open_ ? " > " : " >= ") + text_of(low_);
    else if (has_high_)
      range = std::string(high_open_ ? " < " : " <= ") + text_of(high_);
    if (count_suffixes_) range += " (such as 4096, 32K or 1M; K = 1024)";
    return kind + range;
  }

  bool in_range(T v) const {
    if constexpr (std::is_floating_point_v<T>)
      if (!std::isfinite(v)) return false;
    if (has_low_ && (low_open_ ? !(v > low_) : !(v >= low_))) return false;
    if (has_high_ && (high_open_ ? !(v < high_) : !(v <= high_))) return false;
    return true;
  }

  void xparse(boost::any& value_store, const std::vector<std::string>& tokens) const override {
    namespace po = boost::program_options;
    po::validators::check_first_occurrence(value_store);
    const std::string& text = po::validators::get_single_string(tokens);
    T value{};
    if (!parse_text(text, &value) || !in_range(value)) {
      po::invalid_option_value error(text);
      error.m_error_template = "option '%canonical_option%' must be " + requirement() + " (got '%value%')";
      throw error;
    }
    value_store = boost::any(value);
  }

 private:
  static std::string text_of(T v) {
    if constexpr (std::is_floating_point_v<T>) return format_number(static_cast<double>(v));
    else return std::to_string(v);
  }
  NumberValue* set_low(T v, bool open) {
    has_low_ = true, low_ = v, low_open_ = open;
    return this;
  }
  NumberValue* set_high(T v, bool open) {
    has_high_ = true, high_ = v, high_open_ = open;
    return this;
  }
  bool parse_text(const std::string& text, T* out) const {
    std::string s = text;
    if (!s.empty() && s[0] == '+') s.erase(0, 1);
    if (s.empty()) return false;
    if constexpr (std::is_integral_v<T>) {
      if (count_suffixes_) {
        int64_t v = 0;
        if (!parse_count(s, &v)) return false;
        if (static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
        *out = static_cast<T>(v);
        return true;
      }
      const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
      return r.ec == std::errc() && r.ptr == s.data() + s.size();
    } else {  // strtod, not std::from_chars: its floating-point form needs GCC 11
      if (std::isspace(static_cast<unsigned char>(s[0]))) return false;
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);  // overflow gives inf: refused as not finite
      if (end != s.c_str() + s.size()) return false;
      *out = static_cast<T>(v);
      return true;
    }
  }

  bool count_suffixes_;
  bool has_low_ = false, has_high_ = false, low_open_ = false, high_open_ = false;
  T low_{}, high_{};
};

// A number of T stored into *target when the options are notified.
template <class T>
NumberValue<T>* number(T* target) {
  return new NumberValue<T>(target, false);
}
// A token count (K/M/G suffixes) stored into *target; it must fit T.
template <class T>
NumberValue<T>* count(T* target) {
  static_assert(std::is_integral_v<T>, "counts are integers");
  return new NumberValue<T>(target, true);
}

}  // namespace rw::cli
