// vision_inputs.h: the frames behind a path given to `vqgan encode` or `prepare --vision`:
//   a directory    a video as frame files (io/frame_directory.h: image files in name order),
//                  every frame; a rate does not apply (the files carry no times)
//   an image       a PNG or JPEG file (told by its first bytes): one frame
//   anything else  a video file for libavformat (io/video_reader.h): every frame, or sampled
//                  at fps > 0
// Each frame has a source name, the one CODES.h5 records (io/vqgan_codes.h /sources) and
// `prepare --vision --codes` looks frames up by: the file's path for images and frame files,
// "PATH#K" for the K-th frame of a video file read frame by frame, "PATH@Ffps#K" for the K-th
// sample at F frames a second (F printed as %g).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/image_file.h"

namespace rw::cli {

enum class VisionInputKind { image, frame_directory, video };

// Throws InputError when the path does not exist or is not readable.
VisionInputKind vision_input_kind(const std::string& path);

std::string video_frame_source(const std::string& path, double fps, int64_t k);

// on_frame(source, decoded) for each frame of `path` in order: decoded is the frame for video
// files, null for image files (read them with io::read_image when they are wanted: a rank
// reads only its own). Throws InputError (unreadable input, a rate given for a directory when
// fps_for_directory_is_error).
void for_each_input_frame(const std::string& path, double fps, bool fps_for_directory_is_error,
                          const std::function<void(const std::string& source, const io::RgbImage* decoded)>& on_frame);

// A frame as the VQGAN takes it (LWM's resize, crop and scale: src/vision/frame_preprocess.h).
std::vector<float> model_frame(const io::RgbImage& image, int64_t image_size);

}  // namespace rw::cli
