// video_gif_writer.h: frames as an animated GIF (GIF89a, looping), through Debian's giflib.
// Each frame has its own 256-entry palette: a frame of at most 256 colours is stored exactly
// (its colours in order of first appearance), a frame of more is reduced by giflib's median-cut
// quantizer (GifQuantizeBuffer). The frame delay is 100 / fps centiseconds, rounded, at least 2
// (browsers play shorter delays as 10). Written as PATH.tmp and renamed. Frames must share one
// size; an empty list, a size mismatch or a file that cannot be written is an InputError.
#pragma once
#include <string>
#include <vector>

#include "io/image_file.h"

namespace rw::io {

void write_gif(const std::string& path, const std::vector<RgbImage>& frames, double fps);

}  // namespace rw::io
