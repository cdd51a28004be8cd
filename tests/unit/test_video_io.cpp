// test_video_io.cpp: video files (io/video_reader.h, video_gif_writer.h, video_mp4_writer.h,
// frame_directory.h) on videos this test writes itself:
//   * GIF: frames of few colours are stored exactly (one palette entry per colour), so libavcodec
//     must read back every pixel as written; a frame of more colours goes through the median cut;
//   * MP4 (H.264 by libx264 where Debian's libavcodec has it): frame count, size, timing, and
//     pixels within the codec's error (bound and basis beside it);
//   * sampling at a rate: the instants k / fps take the frame on screen, on GIF and MP4 alike;
//   * bad input: one InputError naming the file.
// About 0.2 s.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/frame_directory.h"
#include "io/image_file.h"
#include "io/video_gif_writer.h"
#include "io/video_mp4_writer.h"
#include "io/video_reader.h"
#include "tests/input_error_check.h"

namespace fs = std::filesystem;
using namespace rw;
using rw::io::RgbImage;

namespace {

struct Scratch {
  fs::path path;
  explicit Scratch(const std::string& name) : path(fs::temp_directory_path() / ("rw_video_io_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Scratch() { fs::remove_all(path); }
};

// Frame f: 16 x 16 blocks of flat colour that change with f (few colours: at most 12 per frame).
RgbImage block_frame(int f, int width, int height) {
  RgbImage im;
  im.width = width;
  im.height = height;
  im.pixels.resize(static_cast<std::size_t>(width * height * 3));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const int b = (x / 16 + 3 * (y / 16) + f) % 12;
      uint8_t* px = &im.pixels[static_cast<std::size_t>((y * width + x) * 3)];
      px[0] = static_cast<uint8_t>(40 + 17 * b);
      px[1] = static_cast<uint8_t>(220 - 13 * b + 5 * f);
      px[2] = static_cast<uint8_t>((b * 71 + 30 * f) % 256);
    }
  return im;
}

std::vector<RgbImage> read_all(const fs::path& path, double fps, std::vector<double>* times = nullptr) {
  std::vector<RgbImage> frames;
  io::read_video(path.string(), fps, [&](const RgbImage& im, double t) {
    frames.push_back(im);
    if (times) times->push_back(t);
  });
  return frames;
}

double mean_abs_error(const RgbImage& a, const RgbImage& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return sum / static_cast<double>(a.pixels.size());
}

}  // namespace

TEST_CASE("rate sampling: the instants k / fps go to the frame on screen", "[video]") {
  // 25 fps sampled at 5: frames 0, 5, 10, ... (instant k / 5 is where frame 5k starts).
  io::RateSampler down(5);
  std::vector<int> taken;
  for (int i = 0; i < 50; ++i)
    for (int64_t n = down.take_until((i + 1) / 25.0); n > 0; --n) taken.push_back(i);
  CHECK(taken == std::vector<int>{0, 5, 10, 15, 20, 25, 30, 35, 40, 45});
  // 10 fps sampled at 25: each frame covers 2 or 3 instants (2.5 on average), none skipped.
  io::RateSampler up(25);
  int64_t total = 0;
  for (int i = 0; i < 4; ++i) {
    const int64_t n = up.take_until((i + 1) / 10.0);
    CHECK((n == 2 || n == 3));
    total += n;
  }
  CHECK(total == 10);
}

TEST_CASE("GIF: frames of few colours read back exactly, at every frame and at a rate", "[video]") {
  Scratch dir("gif");
  std::vector<RgbImage> frames;
  for (int f = 0; f < 5; ++f) frames.push_back(block_frame(f, 40, 24));
  const fs::path gif = dir.path / "clip.gif";
  const mode_t old_mask = ::umask(022);
  io::write_gif(gif.string(), frames, 10);  // 10 cs a frame
  ::umask(old_mask);
  CHECK(!fs::exists(gif.string() + ".tmp"));
  // Readable by others, as every output, under umask 022 (giflib's own open made files 0600).
  CHECK((fs::status(gif).permissions() & fs::perms::others_read) != fs::perms::none);
  std::vector<double> times;
  const std::vector<RgbImage> back = read_all(gif, 0, &times);
  REQUIRE(back.size() == 5);
  for (int f = 0; f < 5; ++f) {
    CHECK(back[f].width == 40);
    CHECK(back[f].height == 24);
    CHECK(back[f].pixels == frames[f].pixels);  // lossless: each colour has its palette entry
    CHECK(times[f] == Approx(0.1 * f).margin(1e-9));
  }
  // At 5 fps: the instants 0, 0.2, 0.4 s fall on frames 0, 2 and 4.
  const std::vector<RgbImage> sampled = read_all(gif, 5);
  REQUIRE(sampled.size() == 3);
  for (int k = 0; k < 3; ++k) CHECK(sampled[k].pixels == frames[2 * k].pixels);

  // 4096 colours (a gradient): reduced to 256 by giflib's median cut, which first keeps 5 bits a
  // channel (steps of 8 levels) and then splits the 32 x 32 (R, G) cells into 256 boxes of about
  // 2 x 2 cells; a pixel moves by at most a box (16 levels) a channel, by about one step (8)
  // on average in R and G and little in B: the mean over channels stays below 8.
  RgbImage gradient;
  gradient.width = gradient.height = 64;
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) gradient.pixels.insert(gradient.pixels.end(), {uint8_t(4 * x), uint8_t(4 * y), 128});
  io::write_gif(gif.string(), {gradient}, 4);
  const std::vector<RgbImage> one = read_all(gif, 0);
  REQUIRE(one.size() == 1);
  CHECK(mean_abs_error(one[0], gradient) < 8.0);
}

TEST_CASE("MP4: frame count, size, timing and pixels within the codec's error", "[video]") {
  Scratch dir("mp4");
  std::vector<RgbImage> frames;
  for (int f = 0; f < 6; ++f) frames.push_back(block_frame(f, 64, 48));
  const fs::path mp4 = dir.path / "clip.mp4";
  INFO("encoder " << io::mp4_encoder_name());
  // Lossless H.264 (crf 0): what is left is the colour conversion. Inside the flat 16 x 16 blocks
  // (5 pixels from their edges: the 4:2:0 chroma is filtered down on writing and up on reading,
  // bicubic, each filter reaching 2 chroma samples = 4 pixels; a margin of 4 measured 3 levels
  // and 2 measured 10, as chroma from the next block leaks in) an RGB channel is
  // Y + a Cb + b Cr with Y, Cb, Cr rounded to 8-bit limited range (steps 255/219 and 255/224
  // levels): at most 0.58 + 0.80 + 0.80 (|a| + |b| <= 1.4 by half a chroma step) < 2.2, so 2 after
  // rounding. MPEG-4 part 2 has no lossless mode: skipped there.
  if (io::mp4_encoder_name() == "libx264") {
    io::write_mp4(mp4.string(), frames, 8, 0);
    const std::vector<RgbImage> lossless = read_all(mp4, 0);
    REQUIRE(lossless.size() == 6);
    const int kMargin = 5;
    int worst = 0;
    for (int f = 0; f < 6; ++f)
      for (int y = 0; y < 48; ++y)
        for (int x = 0; x < 64; ++x) {
          if (x % 16 < kMargin || x % 16 >= 16 - kMargin || y % 16 < kMargin || y % 16 >= 16 - kMargin) continue;
          for (int c = 0; c < 3; ++c) {
            const std::size_t i = static_cast<std::size_t>((y * 64 + x) * 3 + c);
            worst = std::max(worst, std::abs(int(lossless[f].pixels[i]) - int(frames[f].pixels[i])));
          }
        }
    CHECK(worst <= 2);
  }
  // The default quality (crf 18): each frame read back is far nearer its own original than any
  // other (the frames differ by 40+ levels on average; the codec's error is a few levels: the
  // conversion above plus the quantiser, and chroma blurred across block edges).
  io::write_mp4(mp4.string(), frames, 8);
  CHECK(!fs::exists(mp4.string() + ".tmp"));
  std::vector<double> times;
  const std::vector<RgbImage> back = read_all(mp4, 0, &times);
  REQUIRE(back.size() == 6);
  for (int f = 0; f < 6; ++f) {
    CHECK(back[f].width == 64);
    CHECK(back[f].height == 48);
    const double err = mean_abs_error(back[f], frames[f]);
    INFO("frame " << f << " mean abs error " << err);
    CHECK(err < 8.0);
    for (int g = 0; g < 6; ++g)
      if (g != f) CHECK(mean_abs_error(back[f], frames[g]) > 4 * err);
    CHECK(times[f] == Approx(f / 8.0).margin(1e-6));
  }
  // At 4 fps: frames 0, 2, 4.
  const std::vector<RgbImage> sampled = read_all(mp4, 4);
  REQUIRE(sampled.size() == 3);
  for (int k = 0; k < 3; ++k) CHECK(sampled[k].pixels == back[2 * k].pixels);
}

TEST_CASE("video files: bad input is one error naming the file", "[video]") {
  Scratch dir("bad");
  const fs::path text = dir.path / "notes.mp4";
  std::ofstream(text) << "not a video at all\n";
  CHECK_ERROR(read_all(text, 0), "notes.mp4' is not a video libavformat can read");
  CHECK_ERROR(read_all(dir.path / "missing.mp4", 0), "missing.mp4");
  // A truncated MP4: its index (at the end) is gone.
  std::vector<RgbImage> frames = {block_frame(0, 32, 32), block_frame(1, 32, 32)};
  const fs::path mp4 = dir.path / "cut.mp4";
  io::write_mp4(mp4.string(), frames, 4);
  fs::resize_file(mp4, fs::file_size(mp4) / 2);
  CHECK_ERROR(read_all(mp4, 0), "cut.mp4");
  CHECK_ERROR(io::write_mp4((dir.path / "odd.mp4").string(), {block_frame(0, 31, 32)}, 4), "even width and height");
  CHECK_ERROR(io::write_gif((dir.path / "mixed.gif").string(), {block_frame(0, 32, 32), block_frame(1, 16, 32)}, 4),
              "frame 1 is 16 x 32, the first 32 x 32");
  CHECK(!fs::exists(dir.path / "mixed.gif.tmp"));
  CHECK_ERROR(io::write_gif((dir.path / "none" / "x.gif").string(), frames, 4), "cannot create");
}

TEST_CASE("frame directories: image files in name order", "[video]") {
  Scratch dir("frames");
  for (const char* name : {"f_0010.png", "f_0002.JPG", ".hidden.png", "notes.txt", "f_0001.jpeg"}) std::ofstream(dir.path / name) << "x";
  fs::create_directories(dir.path / "sub.png");
  const std::vector<std::string> files = io::list_frame_files(dir.path.string());
  REQUIRE(files.size() == 3);
  CHECK(fs::path(files[0]).filename() == "f_0001.jpeg");
  CHECK(fs::path(files[1]).filename() == "f_0002.JPG");
  CHECK(fs::path(files[2]).filename() == "f_0010.png");
  CHECK_ERROR(io::list_frame_files((dir.path / "sub.png").string()), "holds no .png, .jpg or .jpeg file");
  CHECK_ERROR(io::list_frame_files((dir.path / "nope").string()), "cannot list the frame directory");
}
