// image_file.cpp: see image_file.h. libpng's simplified API (png_image) reads and writes;
// libjpeg reports errors through a longjmp out of its error handler, so the decoder keeps only
// plain data across setjmp and turns the message into an InputError after it.
#include "io/image_file.h"

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

constexpr int64_t kMaxSide = 1 << 15;  // 32768 pixels a side
// 2^26 pixels (8192 x 8192; 192 MiB as RGB): far above any frame LWM feeds its VQGAN (resized
// to 256 x 256), and what a file's header may make us allocate before its data is read.
constexpr int64_t kMaxPixels = int64_t(1) << 26;
// Deflate's largest compression ratio (RFC 1951: a 258-byte match in at least 2 bits, ~1032:1):
// the PNG holding w x h pixels has at least h x (1 + ceil(w / 8)) bytes of filtered rows (1 bit a
// pixel), so a file with fewer than that / 1032 bytes cannot hold them: it is truncated or forged.
constexpr int64_t kMaxDeflateRatio = 1032;

// What is wrong with a header's size, or nullptr (plain text: no destructor near setjmp).
const char* size_problem(int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > kMaxSide || height > kMaxSide) return "1 to 32768 pixels per side supported";
  if (width * height > kMaxPixels) return "at most 2^26 = 67,108,864 pixels supported";
  return nullptr;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read image '" + path + "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  if (in.bad()) throw InputError("cannot read image '" + path + "'");
  return bytes;
}

RgbImage decode_png(const std::vector<uint8_t>& bytes, const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()))
    throw InputError("'" + path + "' is not a readable PNG (" + image.message + ")");
  const int64_t width = image.width, height = image.height;
  if (const char* problem = size_problem(width, height)) {
    png_image_free(&image);
    throw InputError("'" + path + "': PNG of " + std::to_string(width) + " x " + std::to_string(height) + " pixels (" +
                     problem + ")");
  }
  if (static_cast<int64_t>(bytes.size()) * kMaxDeflateRatio < height * (1 + (width + 7) / 8)) {
    png_image_free(&image);
    throw InputError("'" + path + "' is a damaged PNG (" + std::to_string(bytes.size()) + " bytes cannot hold " +
                     std::to_string(width) + " x " + std::to_string(height) + " pixels: truncated?)");
  }
  // sRGB 8-bit RGB without gamma correction of the samples: PNG_FORMAT_RGB would composite alpha
  // onto a background and PIL's convert('RGB') drops it, so read RGBA and drop the alpha here.
  image.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, rgba.data(), 0, nullptr))
    throw InputError("'" + path + "' is a damaged PNG (" + image.message + ")");
  RgbImage out;
  out.width = image.width;
  out.height = image.height;
  out.pixels.resize(static_cast<std::size_t>(out.width * out.height * 3));
  for (int64_t i = 0; i < out.width * out.height; ++i)
    for (int k = 0; k < 3; ++k) out.pixels[static_cast<std::size_t>(3 * i + k)] = rgba[static_cast<std::size_t>(4 * i + k)];
  return out;
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (corrupt data recovered from) pass silently, as in PIL, except the end of the file
// before the end of the image: PIL refuses a truncated image ("image file is truncated"), and
// libjpeg would go on decoding padding for every pixel the header declared.
void jpeg_warning(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_fail(cinfo);
}

// Decodes into `out` (sized inside); returns "" or the error. No C++ object with a destructor is
// created between setjmp and the last libjpeg call.
std::string decode_jpeg_into(const std::vector<uint8_t>& bytes, RgbImage* out) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_fail;
  err.mgr.emit_message = jpeg_warning;
  err.message[0] = '\0';
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return err.message;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    return "CMYK JPEG (not supported: convert it to RGB)";
  }
  const int64_t width = cinfo.image_width, height = cinfo.image_height;
  if (const char* problem = size_problem(width, height)) {
    jpeg_destroy_decompress(&cinfo);
    return std::to_string(width) + " x " + std::to_string(height) + " pixels: " + problem;
  }
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  out->width = cinfo.output_width;
  out->height = cinfo.output_height;
  out->pixels.resize(static_cast<std::size_t>(out->width * out->height * 3));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->pixels.data() + static_cast<std::size_t>(cinfo.output_scanline) * out->width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return "";
}

}  // namespace

namespace {
const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
bool is_png(const uint8_t* bytes, std::size_t n) { return n >= 8 && std::memcmp(bytes, kPng, 8) == 0; }
bool is_jpeg(const uint8_t* bytes, std::size_t n) { return n >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF; }
}  // namespace

bool has_image_signature(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint8_t head[8] = {0};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const std::size_t n = static_cast<std::size_t>(in.gcount());
  return is_png(head, n) || is_jpeg(head, n);
}

RgbImage read_image(const std::string& path) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  if (is_png(bytes.data(), bytes.size())) return decode_png(bytes, path);
  if (is_jpeg(bytes.data(), bytes.size())) {
    RgbImage image;
    const std::string error = decode_jpeg_into(bytes, &image);
    if (!error.empty()) throw InputError("'" + path + "' is not a readable JPEG (" + error + ")");
    return image;
  }
  throw InputError("'" + path + "' is neither PNG nor JPEG (by its first bytes)");
}

void write_png(const std::string& path, const RgbImage& image) {
  RW_CHECK(image.width >= 1 && image.height >= 1 && image.pixels.size() == static_cast<std::size_t>(image.width * image.height * 3),
           "write_png: pixels do not match the size");
  const std::string tmp = path + ".tmp";
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&png, tmp.c_str(), 0, image.pixels.data(), 0, nullptr)) {
    std::remove(tmp.c_str());
    throw InputError("cannot write '" + tmp + "' (" + png.message + ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw InputError("cannot rename '" + tmp + "' to '" + path + "'");
  }
}

}  // namespace rw::io
