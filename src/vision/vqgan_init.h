// vqgan_init.h: a VQGAN made here rather than imported (`ringworld vqgan init`), for the vision
// demo: seeded random weights (or, for the encoder, the designed "pool" weights below) whose
// codebook is then fitted by k-means to the encoder's latents of sample frames, so that codes
// stand for what the (untrained) encoder tells apart. Nothing is trained: the decoder stays
// random, decoded frames show nothing useful; encoding is what the demo uses.
// Random initialisation (PyTorch's defaults for Conv2d and GroupNorm, and diffusers' VectorQuantizer):
//   every convolution weight and bias uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)], fan_in =
//   in_channels x kh x kw; GroupNorm weight 1, bias 0; codebook uniform in [-1/K, 1/K] (K =
//   codebook_size). Draws: one splitmix64 stream per tensor, seeded by (seed, tensor index).
// Fitting (Lloyd's k-means, squared L2, as the quantizer's nearest-code search): k-means++
//   seeding from a seeded stream (the first centre uniform, each next drawn with probability
//   proportional to the squared distance to the nearest chosen centre), then `iterations`
//   rounds of assign (ties to the lowest index) and mean; a centre left without vectors keeps
//   its place. Deterministic for a seed. Sums in double. The whole `vqgan init --fit-codebook`
//   (the encoder's latents on the cpu backend, then the fit) gives the same bits at any thread
//   count: the convolutions tile their GEMMs themselves (device/cpu/vision_ops.h).
#pragma once
#include <cstdint>
#include <vector>

#include "device/backend.h"
#include "src/vision/vqgan_config.h"

namespace rw::vision {

// parameter count floats in vqgan_tensors(config) order (VqganModel::load_weights).
enum class VqganEncoderInit { random, pool };
// encoder random: every tensor as above. pool: a designed encoder instead (the decoder and the
// codebook stay random): RGB is carried in channels 0-2 of every layer, every other weight
// and every bias 0, so that each latent is the frame's colour averaged over its cell: conv_in,
// conv_shortcut, conv_out and quant_conv take the centre tap of channel c to channel c (c < 3),
// each downsampler averages the 2x2 block it starts at (taps (0,0), (0,1), (1,0), (1,1) at
// 1/4: never the padding), every residual branch is 0 (conv1, conv2: each block the identity),
// GroupNorm 1 and 0; before conv_out, GroupNorm (over the frame; R, G, B share a group) and
// SiLU. A latent is then SiLU of the cell's mean colour normalised over the frame: the same
// for the same cell content wherever it lies, apart for different colours. Why: a random
// deep encoder of this size maps a flat colour to codes that change with position and the
// frame's other content (measured on the demo's frames: no code singled out any needle
// colour), so no model could learn colours from its codes. Needs RGB input and every width >= 3.
std::vector<float> make_vqgan_weights(const VqganConfig& config, uint64_t seed,
                                      VqganEncoderInit encoder = VqganEncoderInit::random);

// The offset of quantize.embedding.weight (codebook_size x codebook_dim) in those values.
int64_t codebook_offset(const VqganConfig& config);

// vectors: n x dim (row-major). Returns k x dim centres. n >= 1, k >= 1 (k > n: the centres
// past the n distinct draws repeat chosen vectors). iterations >= 0.
std::vector<float> fit_codebook_kmeans(const std::vector<float>& vectors, int64_t dim, int64_t k, int iterations,
                                       uint64_t seed);

// The mean over vectors of the squared L2 distance to the nearest centre (the quantization error).
double quantization_error(const std::vector<float>& vectors, const std::vector<float>& centres, int64_t dim);

// The encoder's latents (after quant_conv) of n frames [n, 3, S, S] in [-1, 1], as n x s x s
// vectors of codebook_dim (one per code position, frame after frame, row-major): what the
// quantizer compares with the codebook. Runs on `backend` in batches of max_batch.
std::vector<float> encoder_latent_vectors(device::Backend& backend, const VqganConfig& config,
                                          const std::vector<float>& weights, const float* frames, int64_t n,
                                          int64_t max_batch);

}  // namespace rw::vision
