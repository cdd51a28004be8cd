// vqgan_codes.h: the VQGAN codes file (CODES.h5) of `ringworld vqgan encode` / `decode`:
//   /codes    int32 [frames, s, s]: each frame's codes, row-major (LWM's order for tokens)
//   /sources  uint8 [bytes]: the frames' source names, one per line ("" lines allowed), in order
//   root attributes: codebook_size (int64), weights (string: the weight file that made them)
// Written collectively and atomically (write_file_atomically): each rank writes its frames, a
// strided run (rank r: frames r, r + N, ...). Read collectively: the header, then each rank its
// run. Codes out of [0, codebook_size) are refused on read (InputError naming file and frame).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/common/ring_layout.h"

namespace rw::io {

struct VqganCodesHeader {
  int64_t frames = 0, size = 0;  // codes per side
  int64_t codebook_size = 0;
  std::string weights;
  std::vector<std::string> sources;  // frames entries
};

// Collective. `local` holds this rank's frames of `run` in order (run.count x size x size).
void write_vqgan_codes(const std::string& path, const VqganCodesHeader& header, const TokenRun& run,
                       const int32_t* local);

// Collective. Throws InputError (the same on every rank) when the file is not a codes file.
VqganCodesHeader read_vqgan_codes_header(const std::string& path);
// Collective: this rank's frames of `run`, validated against the codebook size.
std::vector<int32_t> read_vqgan_codes(const std::string& path, const VqganCodesHeader& header, const TokenRun& run);

}  // namespace rw::io
