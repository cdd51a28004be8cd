// synthetic_video.cpp: see synthetic_video.h.
#include "src/vision/synthetic_video.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "src/common/input_error.h"

namespace rw::vision {
namespace {

struct Colour {
  const char* name;
  uint8_t rgb[3];
};
// Saturated and far apart from each other and from the greys of the background and distractor.
constexpr Colour kColours[kNeedleColours] = {
    {"red", {220, 40, 40}},     {"green", {40, 200, 40}},   {"blue", {40, 70, 230}},
    {"yellow", {230, 220, 40}}, {"magenta", {210, 50, 210}}, {"cyan", {40, 210, 210}},
};

// A seeded stream (splitmix64): reproducible on every platform.
struct Stream {
  uint64_t state;
  explicit Stream(uint64_t seed) : state(seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }  // n >= 1
  int64_t between(int64_t lo, int64_t hi) { return lo + below(hi - lo + 1); }                     // [lo, hi]
};

void fill_square(std::vector<uint8_t>& rgb, int64_t frame_offset, int64_t S, int64_t x0, int64_t y0, int64_t side,
                 const uint8_t colour[3]) {
  for (int64_t y = std::max<int64_t>(y0, 0); y < std::min(y0 + side, S); ++y)
    for (int64_t x = std::max<int64_t>(x0, 0); x < std::min(x0 + side, S); ++x) {
      uint8_t* p = rgb.data() + frame_offset + (y * S + x) * 3;
      p[0] = colour[0], p[1] = colour[1], p[2] = colour[2];
    }
}

// Position along one axis of a point moving at `velocity` from `start` in [0, span], reflected
// at both ends.
int64_t bounce(int64_t start, int64_t velocity, int64_t t, int64_t span) {
  if (span == 0) return 0;
  const int64_t period = 2 * span;
  int64_t p = (start + velocity * t) % period;
  if (p < 0) p += period;
  return p <= span ? p : period - p;
}

}  // namespace

const char* needle_colour_name(int colour) {
  if (colour < 0 || colour >= kNeedleColours)
    throw InputError("needle colour " + std::to_string(colour) + " is outside [0, " + std::to_string(kNeedleColours) + ")");
  return kColours[colour].name;
}

void needle_colour_rgb(int colour, uint8_t rgb[3]) {
  needle_colour_name(colour);  // checks
  std::copy(kColours[colour].rgb, kColours[colour].rgb + 3, rgb);
}

void check_video_spec(const SyntheticVideoSpec& s) {
  if (s.frame_size < 8 || s.frame_size > 4096 || s.frame_size % 8 != 0)
    throw InputError("synthetic video: frame size must be a multiple of 8 in [8, 4096], is " + std::to_string(s.frame_size));
  if (s.frames < 1 || s.frames > 1000000)
    throw InputError("synthetic video: frames must be in [1, 1000000], is " + std::to_string(s.frames));
  if (s.needle_frame < 0 || s.needle_frame >= s.frames)
    throw InputError("synthetic video: needle frame " + std::to_string(s.needle_frame) + " is outside [0, " +
                     std::to_string(s.frames) + ")");
  needle_colour_name(s.colour);
}

SyntheticVideo make_synthetic_video(const SyntheticVideoSpec& spec) {
  check_video_spec(spec);
  const int64_t S = spec.frame_size, frame_bytes = S * S * 3;
  Stream rng(spec.seed);
  const uint8_t level = static_cast<uint8_t>(rng.between(20, 70));  // background grey
  const uint8_t background[3] = {level, level, level};
  const uint8_t grey = static_cast<uint8_t>(rng.between(150, 200));  // the distractor's grey
  const uint8_t distractor[3] = {grey, grey, grey};
  const int64_t small = S / 4, big = S / 2, span = S - small;
  const int64_t x0 = rng.between(0, span), y0 = rng.between(0, span);
  const int64_t step = std::max<int64_t>(S / 16, 1);
  int64_t vx = rng.between(-step, step), vy = rng.between(-step, step);
  if (vx == 0 && vy == 0) vx = step;
  const int64_t nx = rng.between(0, S - big), ny = rng.between(0, S - big);
  uint8_t needle[3];
  needle_colour_rgb(spec.colour, needle);

  SyntheticVideo video;
  video.spec = spec;
  video.rgb.resize(static_cast<std::size_t>(spec.frames * frame_bytes));
  for (int64_t t = 0; t < spec.frames; ++t) {
    const int64_t at = t * frame_bytes;
    fill_square(video.rgb, at, S, 0, 0, S, background);
    fill_square(video.rgb, at, S, bounce(x0, vx, t, span), bounce(y0, vy, t, span), small, distractor);
    if (t == spec.needle_frame) fill_square(video.rgb, at, S, nx, ny, big, needle);
  }
  return video;
}

int64_t needle_frame_at_depth(int64_t frames, double depth_percent) {
  if (frames < 1) throw InputError("a video needs at least one frame");
  if (!(depth_percent >= 0 && depth_percent <= 100)) throw InputError("needle depth must be in [0, 100] percent");
  return static_cast<int64_t>(std::llround(depth_percent / 100.0 * static_cast<double>(frames - 1)));
}

SyntheticVideoSpec draw_video_spec(uint64_t seed, int64_t index, int64_t min_frames, int64_t max_frames, int64_t frame_size) {
  if (min_frames < 1 || max_frames < min_frames)
    throw InputError("synthetic videos: frame counts must satisfy 1 <= min <= max (got " + std::to_string(min_frames) + ", " +
                     std::to_string(max_frames) + ")");
  Stream rng(seed ^ (static_cast<uint64_t>(index) * 0xd1b54a32d192ed03ULL));
  rng.next();
  SyntheticVideoSpec s;
  s.frame_size = frame_size;
  s.frames = rng.between(min_frames, max_frames);
  s.needle_frame = rng.below(s.frames);
  s.colour = static_cast<int>(rng.below(kNeedleColours));
  s.seed = rng.next();
  check_video_spec(s);
  return s;
}

std::string visual_needle_question() { return "Q: what colour was the big square? A:"; }

std::string visual_needle_caption(int colour) {
  return visual_needle_question() + " " + needle_colour_name(colour) + ".";
}

bool visual_needle_hit(const std::string& answer, int colour) {
  const std::string name = needle_colour_name(colour);
  std::size_t i = 0;
  while (i < answer.size() && (answer[i] == ' ' || answer[i] == '\t' || answer[i] == '\n')) ++i;
  if (answer.compare(i, name.size(), name) != 0) return false;
  const std::size_t end = i + name.size();
  return end == answer.size() || !std::isalpha(static_cast<unsigned char>(answer[end]));
}

}  // namespace rw::vision
