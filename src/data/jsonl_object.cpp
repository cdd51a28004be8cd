// jsonl_object.cpp: see jsonl_object.h.
#include "src/data/jsonl_object.h"

#include <cstring>
#include <vector>

#include "src/common/input_error.h"

namespace rw::data {

simdjson::dom::object parse_jsonl_object(const std::string& line, const std::string& where) {
  thread_local simdjson::dom::parser parser;
  thread_local std::vector<char> padded;
  padded.resize(line.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(padded.data(), line.data(), line.size());
  simdjson::dom::element document;
  const simdjson::error_code parse_error = parser.parse(padded.data(), line.size(), false).get(document);
  if (parse_error) throw InputError(where + ": not valid JSON: " + simdjson::error_message(parse_error));
  simdjson::dom::object object;
  if (document.get(object)) throw InputError(where + ": not a JSON object");
  return object;
}

}  // namespace rw::data
