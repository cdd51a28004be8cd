// number_format.h: numbers as people type them. format_number(0.9) is "0.9" (not
// "0.90000000000000002"), 1e-5 is "1e-5", 3e-4 is "0.0003", 10000 and 1e6 are "10000" and
// "1000000" (whole numbers below 1e16 as integers), 1e20 is "1e20": the shortest text that
// reads back as exactly the same double, so help texts, run.ini files and messages show what
// was typed and parse back bit-identically.
#pragma once
#include <string>

namespace rw {

// Shortest round-trip text of `value` (exponent without '+' or leading zeros); "nan", "inf",
// "-inf" for non-finite values.
std::string format_number(double value);

}  // namespace rw
