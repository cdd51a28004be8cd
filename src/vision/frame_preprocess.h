// frame_preprocess.h: frames as LWM prepares them for its VQGAN (vision_chat.py _process_frame)
// and back. In: PIL's Image.resize with its default filter (bicubic for RGB, Pillow >= 7) so the
// short side becomes `size` (the other int(size * long / short)), a crop to the centre box
// ((w - size) / 2 ... rounded half to even, as PIL's crop rounds), then x / 127.5 - 1. The
// resize is PIL's algorithm (Resample.c): separable, horizontal pass first, support 2 x max(1,
// scale), the cubic with a = -0.5, weights normalised and in 22-bit fixed point, each pass
// rounded and clamped to 8 bits; so results match PIL's bytes. Out: clamp to [-1, 1], then
// round((x + 1) x 127.5).
#pragma once
#include <cstdint>
#include <vector>

namespace rw::vision {

// rgb: height x width x 3 bytes -> out_height x out_width x 3 bytes (PIL's bicubic resize).
std::vector<uint8_t> resize_bicubic_like_pil(const uint8_t* rgb, int64_t width, int64_t height, int64_t out_width,
                                             int64_t out_height);

// rgb (height x width x 3 bytes) -> one frame [3, size, size] in [-1, 1] (channel-major, the
// VQGAN's NCHW input).
std::vector<float> lwm_frame(const uint8_t* rgb, int64_t width, int64_t height, int64_t size);

// frame [3, size, size] -> size x size x 3 bytes.
std::vector<uint8_t> frame_to_rgb(const float* frame, int64_t size);

}  // namespace rw::vision
