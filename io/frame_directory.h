// frame_directory.h: a video given as a directory of frames: its image files (.png, .jpg,
// .jpeg, any case; names starting with '.' skipped, sub-directories not entered), sorted by
// name (byte order: number them with leading zeros, frame_0009.png before frame_0010.png).
// Throws InputError when the directory cannot be listed or holds no such file.
#pragma once
#include <string>
#include <vector>

namespace rw::io {

std::vector<std::string> list_frame_files(const std::string& directory);

}  // namespace rw::io
