// video_mp4_writer.cpp: see video_mp4_writer.h.
#include "io/video_mp4_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <cstdio>

#include "io/av_error.h"
#include "io/h5_file.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

const AVCodec* find_encoder() {
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  return codec ? codec : avcodec_find_encoder(AV_CODEC_ID_MPEG4);
}

struct Encoder {
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  SwsContext* sws = nullptr;
  std::string tmp;
  bool committed = false;
  ~Encoder() {
    sws_freeContext(sws);
    av_packet_free(&packet);
    av_frame_free(&frame);
    avcodec_free_context(&codec);
    if (format) {
      if (format->pb) avio_closep(&format->pb);
      avformat_free_context(format);
    }
    if (!tmp.empty() && !committed) {
      std::remove(tmp.c_str());
      remove_cleanup_path(tmp);
    }
  }
};

}  // namespace

std::string mp4_encoder_name() {
  const AVCodec* codec = find_encoder();
  return codec ? codec->name : "none";
}

void write_mp4(const std::string& path, const std::vector<RgbImage>& frames, double fps, int crf) {
  if (frames.empty()) throw InputError("'" + path + "': no frames to write");
  if (!(fps > 0)) throw InputError("'" + path + "': the frame rate must be positive");
  const int64_t w = frames[0].width, h = frames[0].height;
  if (w < 2 || h < 2 || w % 2 || h % 2 || w > 16384 || h > 16384)
    throw InputError("'" + path + "': MP4 (4:2:0) frames need an even width and height, 2 to 16384; got " + std::to_string(w) + " x " +
                     std::to_string(h));
  for (std::size_t i = 0; i < frames.size(); ++i)
    if (frames[i].width != w || frames[i].height != h || frames[i].pixels.size() != static_cast<std::size_t>(w * h * 3))
      throw InputError("'" + path + "': frame " + std::to_string(i) + " is " + std::to_string(frames[i].width) + " x " +
                       std::to_string(frames[i].height) + ", the first " + std::to_string(w) + " x " + std::to_string(h));
  const AVCodec* codec = find_encoder();
  if (!codec) throw InputError("'" + path + "': this libavcodec has neither an H.264 (libx264) nor an MPEG-4 encoder");
  av_log_set_level(AV_LOG_QUIET);
  Encoder e;
  e.tmp = path + ".tmp";
  int rc = avformat_alloc_output_context2(&e.format, nullptr, "mp4", e.tmp.c_str());
  if (rc < 0) throw InputError("'" + path + "': no MP4 muxer in this libavformat (" + av_error_text(rc) + ")");
  e.codec = avcodec_alloc_context3(codec);
  e.frame = av_frame_alloc();
  e.packet = av_packet_alloc();
  if (!e.codec || !e.frame || !e.packet) throw InputError("'" + path + "': out of memory opening the encoder");
  const AVRational rate = av_d2q(fps, 100000);
  e.codec->width = static_cast<int>(w);
  e.codec->height = static_cast<int>(h);
  e.codec->time_base = av_inv_q(rate);
  e.codec->framerate = rate;
  e.codec->pix_fmt = AV_PIX_FMT_YUV420P;
  e.codec->colorspace = AVCOL_SPC_SMPTE170M;
  e.codec->color_range = AVCOL_RANGE_MPEG;
  e.codec->gop_size = 12;
  e.codec->thread_count = 1;
  if (e.format->oformat->flags & AVFMT_GLOBALHEADER) e.codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary* options = nullptr;
  if (std::string(codec->name) == "libx264") {
    av_dict_set(&options, "crf", std::to_string(crf).c_str(), 0);
    av_dict_set(&options, "preset", "medium", 0);
  } else {  // MPEG-4 part 2: a fixed quantiser, 2 of 1..31 (near the codec's best)
    e.codec->flags |= AV_CODEC_FLAG_QSCALE;
    e.codec->global_quality = FF_QP2LAMBDA * 2;
  }
  rc = avcodec_open2(e.codec, codec, &options);
  av_dict_free(&options);
  if (rc < 0) throw InputError("'" + path + "': cannot open the " + std::string(codec->name) + " encoder (" + av_error_text(rc) + ")");
  AVStream* stream = avformat_new_stream(e.format, nullptr);
  if (!stream || avcodec_parameters_from_context(stream->codecpar, e.codec) < 0)
    throw InputError("'" + path + "': cannot add the video stream");
  stream->time_base = e.codec->time_base;
  stream->avg_frame_rate = rate;
  if ((rc = avio_open(&e.format->pb, e.tmp.c_str(), AVIO_FLAG_WRITE)) < 0)
    throw InputError("cannot create '" + e.tmp + "' (" + av_error_text(rc) + ")");
  add_cleanup_path(e.tmp);
  if ((rc = avformat_write_header(e.format, nullptr)) < 0)
    throw InputError("cannot write '" + e.tmp + "' (" + av_error_text(rc) + ")");

  e.frame->format = AV_PIX_FMT_YUV420P;
  e.frame->width = static_cast<int>(w);
  e.frame->height = static_cast<int>(h);
  if (av_frame_get_buffer(e.frame, 0) < 0) throw InputError("'" + path + "': out of memory for a frame");
  e.sws = sws_getContext(static_cast<int>(w), static_cast<int>(h), AV_PIX_FMT_RGB24, static_cast<int>(w), static_cast<int>(h),
                         AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr);
  if (!e.sws) throw InputError("'" + path + "': cannot convert RGB to YUV");
  sws_setColorspaceDetails(e.sws, sws_getCoefficients(SWS_CS_ITU601), 1, sws_getCoefficients(SWS_CS_ITU601), 0, 0, 1 << 16,
                           1 << 16);
  auto drain = [&]() {
    while ((rc = avcodec_receive_packet(e.codec, e.packet)) >= 0) {
      av_packet_rescale_ts(e.packet, e.codec->time_base, stream->time_base);
      e.packet->stream_index = stream->index;
      const int written = av_interleaved_write_frame(e.format, e.packet);
      if (written < 0) throw InputError("cannot write '" + e.tmp + "' (" + av_error_text(written) + ")");
    }
    if (rc != AVERROR(EAGAIN) && rc != AVERROR_EOF) throw InputError("'" + path + "': encoding failed (" + av_error_text(rc) + ")");
  };
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (av_frame_make_writable(e.frame) < 0) throw InputError("'" + path + "': out of memory for a frame");
    const uint8_t* src[4] = {frames[i].pixels.data(), nullptr, nullptr, nullptr};
    const int src_stride[4] = {static_cast<int>(3 * w), 0, 0, 0};
    sws_scale(e.sws, src, src_stride, 0, static_cast<int>(h), e.frame->data, e.frame->linesize);
    e.frame->pts = static_cast<int64_t>(i);
    if ((rc = avcodec_send_frame(e.codec, e.frame)) < 0) throw InputError("'" + path + "': encoding failed (" + av_error_text(rc) + ")");
    drain();
  }
  avcodec_send_frame(e.codec, nullptr);
  drain();
  if ((rc = av_write_trailer(e.format)) < 0) throw InputError("cannot write '" + e.tmp + "' (" + av_error_text(rc) + ")");
  if ((rc = avio_closep(&e.format->pb)) < 0) throw InputError("cannot write '" + e.tmp + "' (" + av_error_text(rc) + ")");
  commit_temporary_file(e.tmp, path);
  e.committed = true;
}

}  // namespace rw::io
