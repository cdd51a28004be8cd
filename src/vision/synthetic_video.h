// synthetic_video.h: the vision demo's task (`make demo-vision`): seeded synthetic videos that
// hide a visual needle. Every frame is S x S RGB on a plain dark background (its grey level drawn
// per video) with a light grey square of side S/4 moving in a straight line and bouncing off the
// edges; in exactly one frame (the needle frame) a square of side S/2 in one of kNeedleColours
// saturated colours lies on top, at a position drawn per video. The question asks for that
// colour; the answer is its name. The needle square covers a whole aligned cell of S/8 pixels
// wherever it lies (a span of S/2 holds an aligned S/8 interval), so an encoder that maps frames
// to (S/8)-pixel cells always sees it whole in at least one cell.
// Everything is a pure function of its spec (seed included): the same spec gives the same bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::vision {

constexpr int kNeedleColours = 6;
// "red", "green", "blue", "yellow", "magenta", "cyan" (distinct first letters). Throws
// InputError outside [0, kNeedleColours).
const char* needle_colour_name(int colour);
void needle_colour_rgb(int colour, uint8_t rgb[3]);

struct SyntheticVideoSpec {
  int64_t frame_size = 32;   // S: frames are S x S; a multiple of 8, >= 8
  int64_t frames = 8;        // >= 1
  int64_t needle_frame = 0;  // in [0, frames)
  int colour = 0;            // the needle's colour, [0, kNeedleColours)
  uint64_t seed = 1;         // background level, the distractor's path, the needle's position
};

struct SyntheticVideo {
  SyntheticVideoSpec spec;
  std::vector<uint8_t> rgb;  // frames x S x S x 3 bytes, row-major, frame after frame
  const uint8_t* frame(int64_t i) const { return rgb.data() + i * spec.frame_size * spec.frame_size * 3; }
};

// Throws InputError naming the field when the spec is out of range.
void check_video_spec(const SyntheticVideoSpec& spec);
SyntheticVideo make_synthetic_video(const SyntheticVideoSpec& spec);

// The needle frame of a video of `frames` frames at `depth_percent` (0: the first frame, the
// farthest back from the question; 100: the last): round(depth / 100 x (frames - 1)).
int64_t needle_frame_at_depth(int64_t frames, double depth_percent);

// The training set's video `index` of a data set seeded `seed`: frames uniform in [min_frames,
// max_frames], the needle frame uniform over them, the colour uniform, its own video seed.
SyntheticVideoSpec draw_video_spec(uint64_t seed, int64_t index, int64_t min_frames, int64_t max_frames, int64_t frame_size);

// The text after the video: the question, then " NAME." as the answer. The question alone is
// the prompt's text at evaluation (byte-level: the caption's tokens are the question's, then
// the answer's).
std::string visual_needle_question();          // "Q: what colour was the big square? A:"
std::string visual_needle_caption(int colour);  // question + " red."
// An answer is right when, leading spaces skipped, it starts with the colour's name followed by
// the end, a '.', or a character that is not a letter ("red." and "red" hit; "redx", "re" miss).
bool visual_needle_hit(const std::string& answer, int colour);

}  // namespace rw::vision
