// token_count.h: token counts as users write them: 4096, 32K, 1M (binary: K = 1024, M = 1024^2,
// G = 1024^3, either case). infer/needle_eval.h parses comma-separated lists of int lengths the
// same way; this one reads a single count into 64 bits.
#pragma once
#include <cstdint>
#include <string>

namespace rw::plan {

// Throws InputError naming `option` and the text when it is not a positive count.
int64_t parse_token_count(const std::string& text, const std::string& option);

// 1048576 -> "1M", 32768 -> "32K", 1000 -> "1000".
std::string format_token_count(int64_t count);

}  // namespace rw::plan
