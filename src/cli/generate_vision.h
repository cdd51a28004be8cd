// generate_vision.h: the vision ends of `ringworld generate`.
//   In: the codes of the prompt's vision blocks, from images and videos encoded by the VQGAN in
//     the same run (every rank encodes every frame: a prompt holds a few frames, and so no rank
//     waits for another's codes), or from a CODES.h5 of `ringworld vqgan encode` (every rank
//     reads all of it).
//   Out: generated codes decoded by the VQGAN (rank r decodes frames r, r + N, ...; rank 0
//     gathers them) to PNG frames in a directory, or one animated GIF or MP4.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "device/backend.h"
#include "src/vision/vqgan_weights.h"

namespace rw::cli {

struct PromptVision {
  std::vector<std::vector<int32_t>> blocks;  // each block's codes: frames x codes_per_frame
  int64_t codes_per_frame = 0;
  int64_t codebook_size = 0;
  int64_t frames = 0;  // in all blocks
};

// One block per image; a video (file or directory of frames) is one block of at most max_frames
// frames, chosen uniformly (LWM's linspace; vision_sequence.h). fps > 0 samples a video file
// (an error for a directory). Local to this rank. Throws InputError for unreadable inputs or a
// VQGAN that cannot run on the backend.
PromptVision encode_prompt_frames(device::Backend& backend, const vision::VqganWeights& weights,
                                  const std::vector<std::string>& images, const std::string& video, double fps,
                                  int64_t max_frames);

// CODES.h5's frames as one block (at most max_frames, chosen uniformly). Collective (every rank
// reads the file): throws InputError on every rank alike for a bad file, and for codes whose
// grid or codebook differ from `vqgan` (when not null: the weights given with --vqgan).
PromptVision read_prompt_codes(const std::string& path, int64_t max_frames, const vision::VqganConfig* vqgan);

// "png" (a directory of frame_NNNNNN.png), "gif" or "mp4", from the output's name unless
// `format` is given ("" = from the name: .gif, .mp4, else a directory). Throws InputError for an
// unknown format.
std::string vision_output_format(const std::string& output, const std::string& format);

// Decodes frames x codes_per_frame codes and writes them (format as above; fps for gif and mp4).
// Collective. Returns "" or the error, the same on every rank.
std::string write_generated_frames(device::Backend& backend, const vision::VqganWeights& weights,
                                   const std::vector<int32_t>& codes, int64_t frames, const std::string& output,
                                   const std::string& format, double fps);

}  // namespace rw::cli
