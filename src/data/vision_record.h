// vision_record.h: one line of a `prepare --vision` .jsonl file (parsed with simdjson, as the
// text reader is):
//   {"text": "a cat on a mat", "images": ["img/cat.png"], "task": "caption"}
//   {"text": "a ball bouncing", "video": "clips/ball.mp4", "fps": 2, "max_frames": 8}
//   {"video": "clips/frames_dir/"}
// Exactly one of "images" (a non-empty array of paths) or "video" (a path: a video file or a
// directory of frame files). Optional: "text" (a string: the caption, or the prompt of a
// generation example; absent or "" for vision alone), "task" ("caption" or "generate";
// absent: the command's --vision-task), "fps" (a positive number: the video's sampling rate;
// absent: --fps), "max_frames" (a positive integer: at most this many frames, chosen uniformly
// as LWM does; absent: --max-frames). Other fields are ignored. A name given twice, a field of
// the wrong type or both/neither of images and video is an InputError starting with `where`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::data {

struct VisionRecord {
  std::string text;
  std::vector<std::string> images;
  std::string video;  // "" with images
  std::string task;   // "" when absent
  double fps = 0;     // 0 when absent
  int64_t max_frames = 0;  // 0 when absent
};

VisionRecord parse_vision_record(const std::string& line, const std::string& where);

}  // namespace rw::data
