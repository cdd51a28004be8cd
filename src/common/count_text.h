// count_text.h: counts as users write them in every command and INI file: 4096, 32K, 1M, 2G
// (binary: K = 1024, M = 1024^2, G = 1024^3, either case). One parser for token counts
// everywhere (train, plan, bench, eval, attn-input, prepare, stage sections), so a config that
// one command accepts is accepted by the others.
#pragma once
#include <cstdint>
#include <string>

namespace rw {

// A non-negative count: decimal digits with an optional K/M/G suffix. False (and *out
// untouched) when the text is anything else or the count does not fit in 63 bits.
bool parse_count(const std::string& text, int64_t* out);

// What parse_count accepts, for messages.
inline const char* count_syntax() { return "a count such as 4096, 32K or 1M (K = 1024)"; }

}  // namespace rw
