// fuzz_image.cpp: PNG and JPEG frames (io/image_file.cpp on Debian's libpng and libjpeg-turbo), as
// `ringworld vqgan encode` reads them: the bytes are written as a file and read_image decodes it.
// What is ours and under test: telling the formats apart, the size limits (1 to 32768 per side,
// checked before the pixel buffer is sized), the libpng simplified API's error paths, and the
// JPEG decoder's setjmp/longjmp error handling (a longjmp from anywhere in libjpeg must leave no
// leak and no destructor skipped). Checks: an accepted image has 1 to 32768 pixels per side and
// exactly width x height x 3 bytes. Decoding work is bounded by the side limit; libFuzzer's
// -rss_limit_mb and -timeout catch a reader that allocates or loops past it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/image_file.h"
#include "src/common/input_error.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  rw::fuzz::init_mpi_once(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const rw::fuzz::TempFile file(data, size, ".img");
  try {
    const rw::io::RgbImage image = rw::io::read_image(file.path());
    if (image.width < 1 || image.height < 1 || image.width > 32768 || image.height > 32768 ||
        image.pixels.size() != static_cast<std::size_t>(image.width * image.height * 3)) {
      std::fprintf(stderr, "fuzz_image: an image of %lld x %lld with %zu bytes of pixels\n", static_cast<long long>(image.width),
                   static_cast<long long>(image.height), image.pixels.size());
      std::abort();
    }
  } catch (const rw::InputError& e) {
    rw::fuzz::refused(e);
  }
  return 0;
}
