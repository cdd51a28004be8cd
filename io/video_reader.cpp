// video_reader.cpp: see video_reader.h. libavformat demuxes, libavcodec decodes (one thread:
// the ranks already share the cores), swscale converts the frames that are kept to RGB24. The
// frame on screen is held (a reference, unconverted) until the next one's timestamp says how
// long it stayed, then given the sample instants of that span.
#include "io/video_reader.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>

#include "io/av_error.h"
#include "io/input_file.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

// Everything libav* hands out, released on every path out (an InputError from the callback too).
struct Decoder {
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* frame = nullptr;
  AVFrame* held = nullptr;
  SwsContext* sws = nullptr;
  ~Decoder() {
    sws_freeContext(sws);
    av_frame_free(&held);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&codec);
    avformat_close_input(&format);
  }
};

// The frame as 8-bit RGB, with the colour matrix and range it declares (BT.601 limited when it
// declares none, as players assume for unlabelled video).
void to_rgb(Decoder& d, const AVFrame* f, RgbImage* out, const std::string& path) {
  const auto format = static_cast<AVPixelFormat>(f->format);
  d.sws = sws_getCachedContext(d.sws, f->width, f->height, format, f->width, f->height, AV_PIX_FMT_RGB24,
                               SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
  if (!d.sws) throw InputError("'" + path + "': cannot convert its frames (pixel format " +
                               std::string(av_get_pix_fmt_name(format) ? av_get_pix_fmt_name(format) : "?") + ") to RGB");
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  if (desc && !(desc->flags & AV_PIX_FMT_FLAG_RGB) && !(desc->flags & AV_PIX_FMT_FLAG_PAL) && desc->nb_components >= 3) {
    const int matrix = f->colorspace == AVCOL_SPC_UNSPECIFIED || f->colorspace == AVCOL_SPC_RGB ? SWS_CS_DEFAULT : f->colorspace;
    const int full_range = f->color_range == AVCOL_RANGE_JPEG;
    sws_setColorspaceDetails(d.sws, sws_getCoefficients(matrix), full_range, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16,
                             1 << 16);
  }
  out->width = f->width;
  out->height = f->height;
  out->pixels.resize(static_cast<std::size_t>(out->width * out->height * 3));
  uint8_t* planes[4] = {out->pixels.data(), nullptr, nullptr, nullptr};
  const int strides[4] = {static_cast<int>(3 * out->width), 0, 0, 0};
  if (sws_scale(d.sws, f->data, f->linesize, 0, f->height, planes, strides) != f->height)
    throw InputError("'" + path + "': converting a frame to RGB failed");
}

}  // namespace

RateSampler::RateSampler(double fps) : fps_(fps) {}

int64_t RateSampler::take_until(double end_s) {
  // Instants k / fps < end_s, i.e. k < end_s x fps; a product within 1e-6 of an integer counts
  // as that integer, so an instant on a frame boundary (25 fps sampled at 5) lands on the frame
  // that starts there whatever the rounding of the timestamps.
  const double limit = end_s * fps_;
  const int64_t below = limit <= 0 ? 0 : static_cast<int64_t>(std::ceil(limit - 1e-6));
  const int64_t n = std::max<int64_t>(0, below - taken_);
  taken_ += n;
  return n;
}

VideoSummary read_video(const std::string& path, double fps,
                        const std::function<void(const RgbImage& frame, double seconds)>& on_frame) {
  check_input_file(path, "video");
  av_log_set_level(AV_LOG_QUIET);  // failures become one InputError; libav's own lines would repeat them
  Decoder d;
  int rc = avformat_open_input(&d.format, path.c_str(), nullptr, nullptr);
  if (rc < 0) throw InputError("'" + path + "' is not a video libavformat can read (" + av_error_text(rc) + ")");
  if ((rc = avformat_find_stream_info(d.format, nullptr)) < 0)
    throw InputError("'" + path + "': cannot read its streams (" + av_error_text(rc) + ")");
  const AVCodec* codec = nullptr;
  const int stream = av_find_best_stream(d.format, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (stream == AVERROR_DECODER_NOT_FOUND) throw InputError("'" + path + "': no decoder for its video codec in this libavcodec");
  if (stream < 0) throw InputError("'" + path + "' has no video stream");
  const AVStream* st = d.format->streams[stream];
  d.codec = avcodec_alloc_context3(codec);
  d.packet = av_packet_alloc();
  d.frame = av_frame_alloc();
  d.held = av_frame_alloc();
  if (!d.codec || !d.packet || !d.frame || !d.held) throw InputError("'" + path + "': out of memory opening the decoder");
  if ((rc = avcodec_parameters_to_context(d.codec, st->codecpar)) < 0 || (d.codec->thread_count = 1, rc = avcodec_open2(d.codec, codec, nullptr)) < 0)
    throw InputError("'" + path + "': cannot open the " + codec->name + " decoder (" + av_error_text(rc) + ")");
  const double time_base = av_q2d(st->time_base);
  const double nominal_s = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? 1.0 / av_q2d(st->avg_frame_rate) : 0.0;

  RateSampler sampler(fps > 0 ? fps : 1.0);
  VideoSummary summary;
  RgbImage image;
  bool holding = false;
  double first_s = 0, held_s = 0, last_span_s = 0;
  // The held frame stayed on screen from held_s until end_s: its share of the instants.
  auto release = [&](double end_s) {
    const int64_t first_instant = summary.frames_sampled;
    const int64_t n = fps > 0 ? sampler.take_until(end_s - first_s) : 1;
    if (n > 0) to_rgb(d, d.held, &image, path);
    for (int64_t i = 0; i < n; ++i) {
      on_frame(image, fps > 0 ? static_cast<double>(first_instant + i) / fps : held_s - first_s);
      ++summary.frames_sampled;
    }
    summary.duration_s = end_s - first_s;
  };
  auto on_decoded = [&]() {
    const int64_t ts = d.frame->best_effort_timestamp;
    double t = ts != AV_NOPTS_VALUE ? static_cast<double>(ts) * time_base : held_s + (last_span_s > 0 ? last_span_s : nominal_s);
    if (!holding) {
      first_s = t;
      summary.width = d.frame->width;
      summary.height = d.frame->height;
    } else {
      t = std::max(t, held_s);  // timestamps that go back: the frame gets no time, keeps its order
      last_span_s = t - held_s;
      release(t);
      av_frame_unref(d.held);
    }
    av_frame_move_ref(d.held, d.frame);
    held_s = t;
    holding = true;
    ++summary.frames_decoded;
  };
  auto drain = [&]() {
    while ((rc = avcodec_receive_frame(d.codec, d.frame)) >= 0) on_decoded();
    if (rc != AVERROR(EAGAIN) && rc != AVERROR_EOF)
      throw InputError("'" + path + "': damaged video data after frame " + std::to_string(summary.frames_decoded) + " (" +
                       av_error_text(rc) + ")");
  };
  while ((rc = av_read_frame(d.format, d.packet)) >= 0) {
    if (d.packet->stream_index == stream) {
      const int sent = avcodec_send_packet(d.codec, d.packet);
      if (sent < 0)
        throw InputError("'" + path + "': damaged video data after frame " + std::to_string(summary.frames_decoded) + " (" +
                         av_error_text(sent) + ")");
      drain();
    }
    av_packet_unref(d.packet);
  }
  if (rc != AVERROR_EOF) throw InputError("'" + path + "': cannot read it to the end (" + av_error_text(rc) + ")");
  avcodec_send_packet(d.codec, nullptr);
  drain();
  if (!holding) throw InputError("'" + path + "' has no video frames");
  // The last frame lasts the video's nominal frame time (else the span before it); a still image
  // at least an instant, so a one-frame video gives one frame.
  const double last_s = nominal_s > 0 ? nominal_s : last_span_s;
  release(held_s + std::max(last_s, fps > 0 ? 2e-6 / fps : 0.0));
  return summary;
}

}  // namespace rw::io
