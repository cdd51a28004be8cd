// json_text.h: JSON documents of the import/export formats (safetensors headers and indexes,
// Hugging Face config.json) parsed with nlohmann-json, strictly: a name given twice in one object
// and nesting deeper than max_depth are refused (the library would keep the last value or
// recurse on), and every failure is one InputError starting with `what`.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace rw::io {

// Throws InputError("<what>: ...") unless text is one JSON object (surrounding whitespace allowed).
nlohmann::json parse_json_object(const char* begin, const char* end, const std::string& what, int max_depth);

inline nlohmann::json parse_json_object(const std::string& text, const std::string& what, int max_depth) {
  return parse_json_object(text.data(), text.data() + text.size(), what, max_depth);
}

}  // namespace rw::io
