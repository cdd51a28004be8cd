// json_text.cpp
#include "io/json_text.h"

#include <set>
#include <vector>

#include "src/common/input_error.h"

namespace rw::io {

nlohmann::json parse_json_object(const char* begin, const char* end, const std::string& what, int max_depth) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> names;  // per open object, the names seen so far
  std::string problem;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= max_depth) {
          problem = "nested deeper than " + std::to_string(max_depth) + " levels";
          throw InputError(problem);
        }
        if (event == json::parse_event_t::object_start) names.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!names.empty()) names.pop_back();
        break;
      case json::parse_event_t::key:
        if (!names.empty() && !names.back().insert(parsed.get<std::string>()).second) {
          problem = "the name \"" + parsed.get<std::string>() + "\" appears twice in one object";
          throw InputError(problem);
        }
        break;
      default:
        break;
    }
    return true;
  };
  json value;
  try {
    value = json::parse(begin, end, callback, /*allow_exceptions=*/true);
  } catch (const InputError&) {
    throw InputError(what + ": " + problem);
  } catch (const json::exception& e) {
    throw InputError(what + " is not valid JSON (" + e.what() + ")");
  }
  if (!value.is_object()) throw InputError(what + " is not a JSON object");
  return value;
}

}  // namespace rw::io
