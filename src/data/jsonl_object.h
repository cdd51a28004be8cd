// jsonl_object.h: one line of a .jsonl file as a JSON object, parsed by simdjson's DOM parser,
// which validates the whole line (structure, numbers, escapes, UTF-8) before anyone looks at
// it. The parser and its padded input buffer are reused from line to line (per thread): a
// multi-GB .jsonl costs one copy per line and no allocation once the longest line has been
// seen. The object lives in that parser: it is valid until the same thread parses another line.
#pragma once
#include <simdjson.h>

#include <string>

namespace rw::data {

// Throws InputError "WHERE: not valid JSON: ..." or "WHERE: not a JSON object".
simdjson::dom::object parse_jsonl_object(const std::string& line, const std::string& where);

}  // namespace rw::data
