// image_file.h: PNG and JPEG frames for the VQGAN commands, through Debian's libpng and
// libjpeg-turbo. Reading gives 8-bit RGB whatever the file holds, as PIL's convert('RGB') does
// for what LWM feeds it: grey replicated, palettes expanded, alpha dropped (not composited),
// 16-bit samples narrowed by libpng (PIL may differ there, and on PNG gamma chunks); the format is told by the file's signature, not its
// name. A file that is neither, or is damaged, is one InputError naming it, and so is an image
// over 32768 pixels a side or 2^26 pixels in all (checked from the header, before any pixel
// buffer is sized), a PNG too short to hold the pixels its header declares, and a JPEG that ends
// before its image does (PIL refuses it too: "image file is truncated"). Writing: PNG, 8-bit
// RGB, atomically (PATH.tmp renamed).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::io {

struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // row-major, 3 bytes (R, G, B) per pixel
};

RgbImage read_image(const std::string& path);
// True when the file starts as a PNG or a JPEG does (what read_image accepts); false for
// anything else, unreadable files included.
bool has_image_signature(const std::string& path);
void write_png(const std::string& path, const RgbImage& image);

}  // namespace rw::io
