// av_error.h: libav's text for an error code (AVERROR(...)), for the messages of the video
// reader and writers.
#pragma once
#include <string>

namespace rw::io {

std::string av_error_text(int code);

}  // namespace rw::io
