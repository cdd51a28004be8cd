// video_mp4_writer.h: frames as an MP4 video through Debian's libavformat/libavcodec: H.264 by
// libx264 (Debian's libavcodec has it) at constant quality crf (18: visually lossless), else,
// in a libavcodec built without it, MPEG-4 part 2 at a fixed quantiser. 4:2:0 YUV, BT.601
// limited range (labelled so; read back by io/video_reader with the same matrix), fps frames a
// second. Written as PATH.tmp and renamed. Frames must share one even width and height (4:2:0);
// otherwise, or when the file cannot be written, an InputError.
#pragma once
#include <string>
#include <vector>

#include "io/image_file.h"

namespace rw::io {

// The encoder used: "libx264" or "mpeg4".
std::string mp4_encoder_name();

void write_mp4(const std::string& path, const std::vector<RgbImage>& frames, double fps, int crf = 18);

}  // namespace rw::io
