// video_gif_writer.cpp: see video_gif_writer.h.
#include "io/video_gif_writer.h"

#include <fcntl.h>
#include <gif_lib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "io/h5_file.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

struct Palette {
  std::vector<GifColorType> colors;   // at most 256
  std::vector<GifByteType> indices;   // one per pixel
};

// Exact when the frame has at most 256 colours, else giflib's median cut.
Palette palette_of(const RgbImage& f, const std::string& path) {
  Palette p;
  const std::size_t n = static_cast<std::size_t>(f.width * f.height);
  p.indices.resize(n);
  std::unordered_map<uint32_t, int> index;
  for (std::size_t i = 0; i < n && index.size() <= 256; ++i) {
    const uint8_t* px = &f.pixels[3 * i];
    const uint32_t key = (uint32_t{px[0]} << 16) | (uint32_t{px[1]} << 8) | px[2];
    auto it = index.find(key);
    if (it == index.end()) {
      if (index.size() == 256) {
        index.emplace(key, 256);  // one too many: quantize
        break;
      }
      it = index.emplace(key, static_cast<int>(index.size())).first;
      p.colors.push_back(GifColorType{px[0], px[1], px[2]});
    }
    p.indices[i] = static_cast<GifByteType>(it->second);
  }
  if (index.size() <= 256) return p;
  std::vector<GifByteType> r(n), g(n), b(n);
  for (std::size_t i = 0; i < n; ++i) {
    r[i] = f.pixels[3 * i];
    g[i] = f.pixels[3 * i + 1];
    b[i] = f.pixels[3 * i + 2];
  }
  int size = 256;
  p.colors.assign(256, GifColorType{0, 0, 0});
  if (GifQuantizeBuffer(static_cast<unsigned>(f.width), static_cast<unsigned>(f.height), &size, r.data(), g.data(), b.data(),
                        p.indices.data(), p.colors.data()) != GIF_OK)
    throw InputError("'" + path + "': reducing a frame to 256 colours failed");
  p.colors.resize(static_cast<std::size_t>(std::max(size, 1)));
  return p;
}

}  // namespace

void write_gif(const std::string& path, const std::vector<RgbImage>& frames, double fps) {
  if (frames.empty()) throw InputError("'" + path + "': no frames to write");
  const int64_t w = frames[0].width, h = frames[0].height;
  if (w < 1 || h < 1 || w > 65535 || h > 65535) throw InputError("'" + path + "': GIF frames are 1 to 65535 pixels a side");
  for (std::size_t i = 0; i < frames.size(); ++i)
    if (frames[i].width != w || frames[i].height != h || frames[i].pixels.size() != static_cast<std::size_t>(w * h * 3))
      throw InputError("'" + path + "': frame " + std::to_string(i) + " is " + std::to_string(frames[i].width) + " x " +
                       std::to_string(frames[i].height) + ", the first " + std::to_string(w) + " x " + std::to_string(h));
  const std::string tmp = path + ".tmp";
  int error = 0;
  // Opened here rather than by EGifOpenFileName, which creates files readable by their owner
  // only (0600): 0666 less the umask, as every other output of ringworld.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (fd < 0) throw InputError("cannot create '" + tmp + "' (" + std::strerror(errno) + ")");
  GifFileType* gif = EGifOpenFileHandle(fd, &error);  // EGifCloseFile closes fd once this succeeded
  if (!gif) {  // giflib fails only before it takes the handle over (allocation)
    ::close(fd);
    std::remove(tmp.c_str());
    throw InputError("cannot create '" + tmp + "' (" + GifErrorString(error) + ")");
  }
  add_cleanup_path(tmp);  // removed if the job dies before the rename
  bool ok = true;
  auto fail = [&](const std::string& what) {
    int close_error = 0;
    if (gif) EGifCloseFile(gif, &close_error);
    gif = nullptr;
    std::remove(tmp.c_str());
    remove_cleanup_path(tmp);
    throw InputError("cannot write '" + tmp + "': " + what);
  };
  EGifSetGifVersion(gif, true);
  ok = EGifPutScreenDesc(gif, static_cast<int>(w), static_cast<int>(h), 8, 0, nullptr) == GIF_OK;
  // NETSCAPE2.0 application extension: loop forever.
  static const GifByteType kApp[11] = {'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0'};
  static const GifByteType kLoop[3] = {1, 0, 0};
  ok = ok && EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) == GIF_OK && EGifPutExtensionBlock(gif, 11, kApp) == GIF_OK &&
       EGifPutExtensionBlock(gif, 3, kLoop) == GIF_OK && EGifPutExtensionTrailer(gif) == GIF_OK;
  if (!ok) fail(GifErrorString(gif->Error));
  const int delay_cs = std::max(2, static_cast<int>(std::lround(100.0 / (fps > 0 ? fps : 10.0))));
  for (const RgbImage& f : frames) {
    Palette p = palette_of(f, path);
    int map_size = 2;  // GIF colour tables hold a power of two entries, at least 2
    while (map_size < static_cast<int>(p.colors.size())) map_size *= 2;
    p.colors.resize(static_cast<std::size_t>(map_size), GifColorType{0, 0, 0});
    ColorMapObject* map = GifMakeMapObject(map_size, p.colors.data());
    if (!map) fail("out of memory");
    GraphicsControlBlock gcb{};
    gcb.DisposalMode = DISPOSE_DO_NOT;
    gcb.UserInputFlag = false;
    gcb.DelayTime = delay_cs;
    gcb.TransparentColor = NO_TRANSPARENT_COLOR;
    GifByteType ext[4];
    const std::size_t ext_len = EGifGCBToExtension(&gcb, ext);
    ok = EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(ext_len), ext) == GIF_OK &&
         EGifPutImageDesc(gif, 0, 0, static_cast<int>(w), static_cast<int>(h), false, map) == GIF_OK;
    GifFreeMapObject(map);
    for (int64_t y = 0; ok && y < h; ++y) ok = EGifPutLine(gif, p.indices.data() + y * w, static_cast<int>(w)) == GIF_OK;
    if (!ok) fail(GifErrorString(gif->Error));
  }
  if (EGifCloseFile(gif, &error) != GIF_OK) {
    std::remove(tmp.c_str());
    remove_cleanup_path(tmp);
    throw InputError("cannot write '" + tmp + "': " + GifErrorString(error));
  }
  commit_temporary_file(tmp, path);
}

}  // namespace rw::io
