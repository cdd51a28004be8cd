// report_text.h: the text pieces the planner's reports share (plan_report.cpp for training,
// inference_report.cpp for generation): printf into a string, bytes and seconds in readable
// units, and one aligned "name ... size" line of a memory breakdown.
#pragma once
#include <string>

namespace rw::plan {

// printf's format into a string (at most 1023 characters).
std::string format_text(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// "1.5 GiB", "12.3 MiB", "512 B".
std::string format_bytes(double n_bytes);
// "12.5 us", "3.20 ms", "4.00 s", "12.0 min".
std::string seconds_text(double seconds);
// "    NAME ....... SIZE\n": a memory breakdown's line.
std::string bytes_line(const std::string& name, double n_bytes);

}  // namespace rw::plan
