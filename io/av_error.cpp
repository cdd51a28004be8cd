// av_error.cpp: see av_error.h.
#include "io/av_error.h"

extern "C" {
#include <libavutil/error.h>
}

namespace rw::io {

std::string av_error_text(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, text, sizeof text);
  return text;
}

}  // namespace rw::io
