// vision_record.cpp: see vision_record.h.
#include "src/data/vision_record.h"

#include <simdjson.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string_view>

#include "src/common/input_error.h"
#include "src/data/jsonl_object.h"

namespace rw::data {

VisionRecord parse_vision_record(const std::string& line, const std::string& where) {
  const simdjson::dom::object object = parse_jsonl_object(line, where);
  VisionRecord r;
  std::set<std::string_view> seen;
  bool has_images = false, has_video = false;
  for (const simdjson::dom::key_value_pair field : object) {
    const std::string_view key = field.key;
    if (key != "text" && key != "images" && key != "video" && key != "task" && key != "fps" && key != "max_frames") continue;
    // JSON leaves duplicate names to the reader (RFC 8259 4): refuse rather than pick one.
    if (!seen.insert(key).second) throw InputError(where + ": \"" + std::string(key) + "\" is given more than once");
    std::string_view text;
    if (key == "text" || key == "video" || key == "task") {
      if (field.value.get(text)) throw InputError(where + ": \"" + std::string(key) + "\" must be a string");
      if (key == "text") r.text = std::string(text);
      else if (key == "task") r.task = std::string(text);
      else {
        if (text.empty()) throw InputError(where + ": \"video\" is an empty path");
        r.video = std::string(text);
        has_video = true;
      }
    } else if (key == "images") {
      simdjson::dom::array array;
      if (field.value.get(array)) throw InputError(where + ": \"images\" must be an array of paths");
      for (const simdjson::dom::element item : array) {
        if (item.get(text) || text.empty()) throw InputError(where + ": \"images\" must hold non-empty path strings");
        r.images.emplace_back(text);
      }
      if (r.images.empty()) throw InputError(where + ": \"images\" is empty");
      has_images = true;
    } else if (key == "fps") {
      double fps = 0;
      if (field.value.get(fps) || !(fps > 0) || !std::isfinite(fps) || fps > 1000)
        throw InputError(where + ": \"fps\" must be a number in (0, 1000]");
      r.fps = fps;
    } else {  // max_frames
      int64_t n = 0;
      if (field.value.get(n) || n < 1) throw InputError(where + ": \"max_frames\" must be a positive integer");
      r.max_frames = n;
    }
  }
  if (has_images == has_video)
    throw InputError(where + (has_images ? ": give \"images\" or \"video\", not both" : ": the record has neither \"images\" nor \"video\""));
  if (has_images && (r.fps > 0 || r.max_frames > 0))
    throw InputError(where + ": \"fps\" and \"max_frames\" apply to a \"video\", not to \"images\"");
  return r;
}

}  // namespace rw::data
