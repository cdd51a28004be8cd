// video_reader.h: the frames of a video file (anything Debian's libavformat/libavcodec decode:
// MP4/H.264, WebM, AVI, animated GIF, ...) as 8-bit RGB, every frame or sampled at a rate.
// Sampling at `fps`: the instants k / fps (k = 0, 1, ...) from the first frame's timestamp to the
// end of the last frame each take the frame on screen then (the last one whose timestamp is not
// after the instant), as ffmpeg's fps filter does; a rate above the video's repeats frames.
// Colour: swscale with the stream's matrix and range (BT.601 limited when unstated). Frames are
// streamed to a callback, so a long video is never held whole. Every failure (missing file, not
// a video, no video stream, damaged data) is one InputError naming the file.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "io/image_file.h"

namespace rw::io {

// The instants of a rate that fall in each of a run of back-to-back frames.
class RateSampler {
 public:
  explicit RateSampler(double fps);  // fps > 0
  // The frame on screen until `end_s` seconds (from the first frame's start; non-decreasing over
  // calls) takes the instants not yet taken that lie before end_s: how many (0, 1, or more).
  int64_t take_until(double end_s);

 private:
  double fps_;
  int64_t taken_ = 0;
};

struct VideoSummary {
  int64_t width = 0, height = 0;
  int64_t frames_decoded = 0, frames_sampled = 0;
  double duration_s = 0;  // first frame's start to last frame's end
};

// fps <= 0: every frame. on_frame(image, seconds) for each sampled frame in order (seconds from
// the first frame's start).
VideoSummary read_video(const std::string& path, double fps,
                        const std::function<void(const RgbImage& frame, double seconds)>& on_frame);

}  // namespace rw::io
