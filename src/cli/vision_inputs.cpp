// vision_inputs.cpp: see vision_inputs.h.
#include "src/cli/vision_inputs.h"

#include <cstdio>
#include <filesystem>

#include "io/frame_directory.h"
#include "io/input_file.h"
#include "io/video_reader.h"
#include "src/common/input_error.h"
#include "src/vision/frame_preprocess.h"

namespace fs = std::filesystem;

namespace rw::cli {

VisionInputKind vision_input_kind(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return VisionInputKind::frame_directory;
  io::check_input_file(path, "image or video");
  return io::has_image_signature(path) ? VisionInputKind::image : VisionInputKind::video;
}

std::string video_frame_source(const std::string& path, double fps, int64_t k) {
  if (fps <= 0) return path + "#" + std::to_string(k);
  char rate[32];
  std::snprintf(rate, sizeof rate, "%g", fps);
  return path + "@" + rate + "fps#" + std::to_string(k);
}

void for_each_input_frame(const std::string& path, double fps, bool fps_for_directory_is_error,
                          const std::function<void(const std::string& source, const io::RgbImage* decoded)>& on_frame) {
  switch (vision_input_kind(path)) {
    case VisionInputKind::image:
      on_frame(path, nullptr);
      return;
    case VisionInputKind::frame_directory:
      if (fps > 0 && fps_for_directory_is_error)
        throw InputError("'" + path + "' is a directory of frames: every frame is taken (a rate applies to video files)");
      for (const std::string& file : io::list_frame_files(path)) on_frame(file, nullptr);
      return;
    case VisionInputKind::video: {
      int64_t k = 0;
      io::read_video(path, fps, [&](const io::RgbImage& frame, double) { on_frame(video_frame_source(path, fps, k++), &frame); });
      return;
    }
  }
}

std::vector<float> model_frame(const io::RgbImage& image, int64_t image_size) {
  return vision::lwm_frame(image.pixels.data(), image.width, image.height, image_size);
}

}  // namespace rw::cli
