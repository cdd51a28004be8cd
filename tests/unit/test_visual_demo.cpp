// test_visual_demo.cpp: the vision demo's parts (`make demo-vision`): the synthetic videos
// (src/vision/synthetic_video.h), the VQGAN made here (src/vision/vqgan_init.h: the init and the
// k-means codebook fit) and the visual-needle evaluation's prompt, greedy text choice, scoring
// and report (src/infer/visual_needle.h). The model-driven loop itself runs in the demo's
// end-to-end test (tests/integration/demo_vision_mini.sh). About a second (the thread-count
// case runs the demo's encoder on 8 frames at 1, 2 and 4 threads).
#include <catch2/catch.hpp>
#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "device/backend.h"
#include "src/common/input_error.h"
#include "src/data/tokenizer.h"
#include "src/infer/visual_needle.h"
#include "src/vision/frame_preprocess.h"
#include "src/vision/synthetic_video.h"
#include "src/vision/vision_sequence.h"
#include "src/vision/vqgan_config.h"
#include "src/vision/vqgan_init.h"

using namespace rw;
using namespace rw::vision;

namespace {

// Pixels of exactly this colour in frame f.
int64_t count_colour(const SyntheticVideo& v, int64_t f, const uint8_t rgb[3]) {
  const int64_t S = v.spec.frame_size;
  int64_t n = 0;
  for (int64_t p = 0; p < S * S; ++p) {
    const uint8_t* q = v.frame(f) + 3 * p;
    n += q[0] == rgb[0] && q[1] == rgb[1] && q[2] == rgb[2];
  }
  return n;
}

// The demo's VQGAN shape (jobs/demo-vision-vqgan.json): 32x32 -> 4x4 codes of 64.
VqganConfig demo_vqgan() {
  VqganConfig c;
  c.image_size = 32;
  c.base_channels = 16;
  c.channel_multipliers = {1, 2, 2, 2};
  c.encoder_res_blocks = 1;
  c.decoder_res_blocks = 2;
  c.mid_res_blocks = 2;
  c.norm_groups = 8;
  c.latent_channels = 8;
  c.codebook_size = 64;
  c.codebook_dim = 8;
  return c;
}

}  // namespace

TEST_CASE("synthetic video: the needle's colour fills S/2 x S/2 pixels of its frame and no others", "[vision_demo]") {
  for (int colour = 0; colour < kNeedleColours; ++colour) {
    SyntheticVideoSpec spec;
    spec.frame_size = 32;
    spec.frames = 7;
    spec.needle_frame = colour % 7;
    spec.colour = colour;
    spec.seed = 100 + colour;
    const SyntheticVideo v = make_synthetic_video(spec);
    REQUIRE(v.rgb.size() == 7u * 32 * 32 * 3);
    uint8_t rgb[3];
    needle_colour_rgb(colour, rgb);
    for (int64_t f = 0; f < spec.frames; ++f) {
      INFO("colour " << colour << " frame " << f);
      CHECK(count_colour(v, f, rgb) == (f == spec.needle_frame ? 16 * 16 : 0));
      // Every other pixel is grey (background or distractor): no needle colour leaks.
      for (int64_t p = 0; p < 32 * 32; ++p) {
        const uint8_t* q = v.frame(f) + 3 * p;
        const bool grey = q[0] == q[1] && q[1] == q[2];
        const bool needle = q[0] == rgb[0] && q[1] == rgb[1] && q[2] == rgb[2];
        if (!(grey || (needle && f == spec.needle_frame))) FAIL("pixel " << p << " is neither grey nor the needle");
      }
    }
  }
}

TEST_CASE("synthetic video: a pure function of its spec; the seed moves things", "[vision_demo]") {
  SyntheticVideoSpec spec;
  spec.frames = 5;
  spec.needle_frame = 2;
  spec.colour = 3;
  spec.seed = 42;
  const SyntheticVideo a = make_synthetic_video(spec), b = make_synthetic_video(spec);
  CHECK(a.rgb == b.rgb);
  spec.seed = 43;
  CHECK(make_synthetic_video(spec).rgb != a.rgb);
  // The distractor moves: consecutive frames without the needle differ.
  const int64_t bytes = 32 * 32 * 3;
  CHECK(!std::equal(a.frame(0), a.frame(0) + bytes, a.frame(1)));
}

TEST_CASE("synthetic video: bad specs are refused", "[vision_demo]") {
  SyntheticVideoSpec spec;
  spec.frame_size = 30;
  CHECK_THROWS_AS(make_synthetic_video(spec), InputError);
  spec.frame_size = 32;
  spec.needle_frame = spec.frames;
  CHECK_THROWS_AS(make_synthetic_video(spec), InputError);
  spec.needle_frame = 0;
  spec.colour = kNeedleColours;
  CHECK_THROWS_AS(make_synthetic_video(spec), InputError);
  CHECK_THROWS_AS(needle_colour_name(-1), InputError);
}

TEST_CASE("needle depth: 0 % is the first frame, 100 % the last, rounded between", "[vision_demo]") {
  CHECK(needle_frame_at_depth(1, 50) == 0);
  CHECK(needle_frame_at_depth(10, 0) == 0);
  CHECK(needle_frame_at_depth(10, 100) == 9);
  CHECK(needle_frame_at_depth(5, 50) == 2);
  CHECK(needle_frame_at_depth(112, 25) == 28);  // 27.75 -> 28
  CHECK_THROWS_AS(needle_frame_at_depth(10, 101), InputError);
  CHECK_THROWS_AS(needle_frame_at_depth(0, 0), InputError);
}

TEST_CASE("draw_video_spec: within its ranges, deterministic, every colour and position drawn", "[vision_demo]") {
  std::set<int> colours;
  std::set<int64_t> lengths, needles;
  for (int64_t i = 0; i < 600; ++i) {
    const SyntheticVideoSpec s = draw_video_spec(7, i, 4, 9, 32);
    REQUIRE(s.frames >= 4);
    REQUIRE(s.frames <= 9);
    REQUIRE(s.needle_frame < s.frames);
    colours.insert(s.colour);
    lengths.insert(s.frames);
    needles.insert(s.needle_frame);
    const SyntheticVideoSpec again = draw_video_spec(7, i, 4, 9, 32);
    CHECK(again.seed == s.seed);
    CHECK(again.colour == s.colour);
  }
  CHECK(colours.size() == static_cast<std::size_t>(kNeedleColours));
  CHECK(lengths.size() == 6u);
  CHECK(needles.size() == 9u);
  CHECK(draw_video_spec(8, 0, 4, 9, 32).seed != draw_video_spec(7, 0, 4, 9, 32).seed);
  CHECK_THROWS_AS(draw_video_spec(7, 0, 5, 4, 32), InputError);
}

TEST_CASE("visual needle scoring: the colour's name as a word, leading spaces skipped", "[vision_demo]") {
  const int red = 0, blue = 2;
  REQUIRE(std::string(needle_colour_name(red)) == "red");
  CHECK(visual_needle_hit(" red.", red));
  CHECK(visual_needle_hit("red", red));
  CHECK(visual_needle_hit("  red, I think", red));
  CHECK_FALSE(visual_needle_hit(" redx.", red));
  CHECK_FALSE(visual_needle_hit(" re", red));
  CHECK_FALSE(visual_needle_hit("", red));
  CHECK_FALSE(visual_needle_hit(" blue.", red));
  CHECK(visual_needle_hit(" blue.", blue));
  CHECK_FALSE(visual_needle_hit("the red one", red));  // the answer must start with it
  // Distinct first letters: the first answer letter alone decides the class.
  std::set<char> first;
  for (int c = 0; c < kNeedleColours; ++c) first.insert(needle_colour_name(c)[0]);
  CHECK(first.size() == static_cast<std::size_t>(kNeedleColours));
  CHECK(visual_needle_caption(blue) == visual_needle_question() + " blue.");
}

TEST_CASE("visual needle prompt: the caption example's tokens up to the answer", "[vision_demo]") {
  data::ByteTokenizer tok;
  VisionVocab vocab{256, 64, 256};
  VisionMarkers markers;
  markers.begin = tok.encode("<vision>");
  markers.end = tok.encode("</vision>");
  const std::vector<int32_t> codes = {1, 2, 3, 4, 63, 0, 5, 6};  // 2 frames of 4 codes
  const std::vector<int32_t> prompt = infer::visual_needle_prompt(vocab, markers, codes, 4, tok);
  // What `prepare --vision --vision-task caption` makes of the record (the training layout).
  VisionTextExample ex;
  ex.blocks = {codes};
  ex.codes_per_frame = 4;
  ex.text = tok.encode(visual_needle_caption(4));
  const TokenSequence full = vision_text_sequence(vocab, markers, ex);
  REQUIRE(prompt.size() < full.tokens.size());
  CHECK(std::equal(prompt.begin(), prompt.end(), full.tokens.begin()));
  const std::vector<int32_t> rest(full.tokens.begin() + static_cast<std::ptrdiff_t>(prompt.size()), full.tokens.end());
  CHECK(tok.decode(rest) == " magenta.");
  // 8 "<vision>" + 2 x (4 + 1) + 9 "</vision>" + the question.
  CHECK(prompt.size() == 8 + 10 + 9 + visual_needle_question().size());
  CHECK(prompt[8] == 256 + 1);
  CHECK(prompt[12] == vocab.eof_id());
  CHECK(prompt[17] == vocab.eov_id());
}

TEST_CASE("greedy_text_token: the argmax of the text columns only, ties to the lowest id", "[vision_demo]") {
  std::vector<float> logits(256 + 256, 0.0f);
  logits[300] = 50;  // a vision column: never chosen
  logits[7] = 2;
  logits[9] = 2;
  CHECK(infer::greedy_text_token(logits, 256) == 7);
  logits[200] = 3;
  CHECK(infer::greedy_text_token(logits, 256) == 200);
  CHECK_THROWS_AS(infer::greedy_text_token(std::vector<float>(10, 0.0f), 256), InputError);
  logits[200] = std::nanf("");
  logits[0] = INFINITY;
  CHECK_THROWS_AS(infer::greedy_text_token(logits, 256), InputError);
}

TEST_CASE("visual needle report: the CSV and the table carry every cell", "[vision_demo]") {
  std::vector<infer::VisualNeedleCell> cells;
  for (int64_t frames : {8, 64})
    for (double depth : {0.0, 50.0}) {
      infer::VisualNeedleCell c;
      c.frames = frames;
      c.prompt_tokens = frames * 17 + 55;
      c.depth = depth;
      c.trials = 4;
      c.correct = static_cast<int>(frames / 8 + depth / 50) % 5;
      cells.push_back(c);
    }
  std::istringstream csv(infer::visual_needle_csv(cells));
  std::string line;
  std::getline(csv, line);
  CHECK(line == "frames,prompt_tokens,depth,trials,correct,accuracy");
  std::size_t i = 0;
  while (std::getline(csv, line)) {
    REQUIRE(i < cells.size());
    long long frames, tokens;
    double depth, accuracy;
    int trials, correct;
    REQUIRE(std::sscanf(line.c_str(), "%lld,%lld,%lf,%d,%d,%lf", &frames, &tokens, &depth, &trials, &correct, &accuracy) == 6);
    CHECK(frames == cells[i].frames);
    CHECK(tokens == cells[i].prompt_tokens);
    CHECK(depth == cells[i].depth);
    CHECK(correct == cells[i].correct);
    CHECK(accuracy == Approx(cells[i].correct / 4.0));
    ++i;
  }
  CHECK(i == cells.size());
  const std::string table = infer::visual_needle_table(cells);
  CHECK(table.find("1143") != std::string::npos);  // 64 x 17 + 55 prompt tokens
  CHECK(table.find("0.25") != std::string::npos);  // 8 frames at 0 %: 1 of 4
  CHECK(table.find("1.00") != std::string::npos);  // 64 frames at 50 %: 4 of 4
}

TEST_CASE("vqgan init: PyTorch's default init, deterministic for a seed", "[vision_demo]") {
  const VqganConfig c = VqganConfig::preset("tiny");
  const std::vector<float> a = make_vqgan_weights(c, 5), b = make_vqgan_weights(c, 5), d = make_vqgan_weights(c, 6);
  REQUIRE(static_cast<int64_t>(a.size()) == vqgan_parameter_counts(c).total());
  CHECK(a == b);
  CHECK(a != d);
  int64_t at = 0;
  double bound = 0;
  for (const VqganTensor& t : vqgan_tensors(c)) {
    INFO(t.name);
    const auto begin = a.begin() + at, end = begin + t.count();
    const bool norm = t.name.find("norm") != std::string::npos;
    if (t.name == "quantize.embedding.weight") {
      for (auto it = begin; it != end; ++it) REQUIRE(std::fabs(*it) <= 1.0 / c.codebook_size);
      CHECK(codebook_offset(c) == at);
    } else if (t.shape.size() == 4) {
      bound = 1.0 / std::sqrt(double(t.shape[1] * t.shape[2] * t.shape[3]));
      double max_abs = 0;
      for (auto it = begin; it != end; ++it) max_abs = std::max(max_abs, double(std::fabs(*it)));
      CHECK(max_abs <= bound);
      if (t.count() >= 100) CHECK(max_abs > 0.8 * bound);  // the whole range is used
    } else if (norm) {
      const float want = t.name.substr(t.name.size() - 7) == ".weight" ? 1.0f : 0.0f;
      for (auto it = begin; it != end; ++it) REQUIRE(*it == want);
    } else {
      for (auto it = begin; it != end; ++it) REQUIRE(std::fabs(*it) <= bound);  // a bias: its convolution's bound
    }
    at += t.count();
  }
}

TEST_CASE("k-means codebook fit: finds separated clusters, lowers the error, deterministic", "[vision_demo]") {
  // 4 clusters in 3-d around far-apart centres, +-0.1 jitter.
  const float centre[4][3] = {{5, 0, 0}, {0, 5, 0}, {0, 0, 5}, {-5, -5, -5}};
  std::vector<float> v;
  for (int i = 0; i < 200; ++i)
    for (int d = 0; d < 3; ++d) v.push_back(centre[i % 4][d] + 0.1f * std::sin(float(i * 7 + d * 13)));
  const std::vector<float> fit = fit_codebook_kmeans(v, 3, 4, 10, 1);
  REQUIRE(fit.size() == 12u);
  CHECK(fit_codebook_kmeans(v, 3, 4, 10, 1) == fit);
  // Each true centre has a fitted centre within the jitter.
  for (const auto& c : centre) {
    double best = 1e9;
    for (int k = 0; k < 4; ++k) {
      double s = 0;
      for (int d = 0; d < 3; ++d) s += (fit[k * 3 + d] - c[d]) * (fit[k * 3 + d] - c[d]);
      best = std::min(best, s);
    }
    CHECK(best < 0.01);
  }
  const std::vector<float> random = {0.1f, 0.2f, 0.3f, -0.1f, 0.0f, 0.2f, 0.3f, 0.3f, -0.3f, 0.0f, 0.0f, 0.1f};
  // Every vector lies within sqrt(3 x 0.1^2) of its true centre, so centres at the cluster means
  // leave a mean squared error of at most 0.03 (about 0.015 here: sin^2 averages 1/2).
  CHECK(quantization_error(v, fit, 3) < 0.03);
  CHECK(quantization_error(v, random, 3) > 10);
  // Zero iterations: the k-means++ seeds themselves, one vector of each cluster here (the clusters
  // are far apart), so each vector is within 2 x 0.17 of its seed.
  CHECK(quantization_error(v, fit_codebook_kmeans(v, 3, 4, 0, 1), 3) < 0.12);
  CHECK_THROWS_AS(fit_codebook_kmeans({}, 3, 4, 1, 1), InputError);
}

TEST_CASE("vqgan init, pool encoder: a cell's latent is its mean colour, wherever the cell lies", "[vision_demo]") {
  const VqganConfig c = demo_vqgan();
  std::unique_ptr<device::Backend> backend = device::make_backend("cpu");
  const std::vector<float> weights = make_vqgan_weights(c, 1, VqganEncoderInit::pool);
  // Two frames: a grey background with one red 8x8 cell, at cell (0, 0) and at cell (2, 1).
  auto frame_with_cell = [](int64_t cy, int64_t cx) {
    std::vector<uint8_t> rgb(32 * 32 * 3, 40);
    for (int64_t y = 8 * cy; y < 8 * cy + 8; ++y)
      for (int64_t x = 8 * cx; x < 8 * cx + 8; ++x) rgb[(y * 32 + x) * 3] = 220;
    return lwm_frame(rgb.data(), 32, 32, 32);
  };
  std::vector<float> frames = frame_with_cell(0, 0);
  const std::vector<float> second = frame_with_cell(2, 1);
  frames.insert(frames.end(), second.begin(), second.end());
  const std::vector<float> z = encoder_latent_vectors(*backend, c, weights, frames.data(), 2, 2);
  auto latent = [&](int64_t f, int64_t cy, int64_t cx) { return std::vector<float>(z.begin() + ((f * 16 + cy * 4 + cx) * 8), z.begin() + ((f * 16 + cy * 4 + cx) * 8) + 8); };
  // fp32 sums of the same values in another order: a few ulps of the latents' scale (~1).
  for (int64_t d = 0; d < 8; ++d) {
    CHECK(latent(0, 0, 0)[d] == Approx(latent(1, 2, 1)[d]).margin(1e-5));
    CHECK(latent(0, 3, 3)[d] == Approx(latent(1, 0, 0)[d]).margin(1e-5));  // background cells
  }
  double apart = 0;
  for (int64_t d = 0; d < 8; ++d) apart += std::fabs(latent(0, 0, 0)[d] - latent(0, 3, 3)[d]);
  CHECK(apart > 0.5);  // red and grey cells differ (their red channels are ~3 normalised units apart)
  // Only channels 0-2 carry anything.
  for (std::size_t i = 0; i < z.size(); ++i)
    if (i % 8 >= 3) REQUIRE(z[i] == 0.0f);
  VqganConfig narrow = VqganConfig::preset("tiny");
  narrow.codebook_dim = 2;  // too narrow for R, G, B
  CHECK_THROWS_AS(make_vqgan_weights(narrow, 1, VqganEncoderInit::pool), InputError);
  CHECK_NOTHROW(make_vqgan_weights(narrow, 1, VqganEncoderInit::random));
}

TEST_CASE("vqgan init: the codebook fitted to the demo's frames beats the random one and tells needles apart",
          "[vision_demo]") {
  const VqganConfig c = demo_vqgan();
  c.validate();
  std::unique_ptr<device::Backend> backend = device::make_backend("cpu");
  std::vector<float> weights = make_vqgan_weights(c, 1, VqganEncoderInit::pool);
  // As `vqgan demo-data --fit-frames 8` makes them: per colour 8 two-frame videos, the needle in
  // the second frame; the first frames are the plain ones.
  constexpr int kPer = 8;
  std::vector<float> frames;
  for (int colour = 0; colour < kNeedleColours; ++colour)
    for (int j = 0; j < kPer; ++j) {
      SyntheticVideoSpec s = draw_video_spec(3, colour * kPer + j, 2, 2, 32);
      s.needle_frame = 1;
      s.colour = colour;
      const SyntheticVideo v = make_synthetic_video(s);
      for (int64_t f = 0; f < 2; ++f) {
        const std::vector<float> x = lwm_frame(v.frame(f), 32, 32, 32);
        frames.insert(frames.end(), x.begin(), x.end());
      }
    }
  const int64_t n = 2 * kNeedleColours * kPer;
  const std::vector<float> latents = encoder_latent_vectors(*backend, c, weights, frames.data(), n, 16);
  REQUIRE(latents.size() == static_cast<std::size_t>(n * 16 * 8));
  const int64_t off = codebook_offset(c);
  const std::vector<float> random(weights.begin() + off, weights.begin() + off + 64 * 8);
  const std::vector<float> fitted = fit_codebook_kmeans(latents, 8, 64, 10, 1);
  CHECK(quantization_error(latents, fitted, 8) < 0.1 * quantization_error(latents, random, 8));
  // The codes the quantizer picks (nearest fitted centre) in each frame.
  auto frame_codes = [&](int64_t frame) {
    std::set<int> out;
    for (int64_t p = 0; p < 16; ++p) {
      const float* x = latents.data() + (frame * 16 + p) * 8;
      int best = 0;
      double best_d = 1e30;
      for (int k = 0; k < 64; ++k) {
        double d = 0;
        for (int j = 0; j < 8; ++j) d += (x[j] - fitted[k * 8 + j]) * (x[j] - fitted[k * 8 + j]);
        if (d < best_d) best_d = d, best = k;
      }
      out.insert(best);
    }
    return out;
  };
  // Every colour has a code of its own: in at least half of its needle frames and in no frame
  // of another colour nor any frame without the needle. (With the random encoder, measured on
  // the demo's 480 fit frames, no code belonged to one colour: the reason for the pool encoder.)
  std::vector<std::map<int, int>> seen(kNeedleColours + 1);  // [colour] code -> frames; [6]: plain
  for (int colour = 0; colour < kNeedleColours; ++colour)
    for (int j = 0; j < kPer; ++j)
      for (int f = 0; f < 2; ++f)
        for (int code : frame_codes(2 * (colour * kPer + j) + f)) ++seen[f == 1 ? colour : kNeedleColours][code];
  for (int colour = 0; colour < kNeedleColours; ++colour) {
    INFO("colour " << needle_colour_name(colour));
    bool own = false;
    for (const auto& [code, count] : seen[colour]) {
      bool elsewhere = false;
      for (int other = 0; other <= kNeedleColours; ++other) elsewhere |= other != colour && seen[other].count(code) > 0;
      own |= !elsewhere && 2 * count >= kPer;
    }
    CHECK(own);
  }
}

TEST_CASE("vqgan init: the same latents and codebook, bit for bit, with 1, 2 and 4 threads", "[vision_demo]") {
  // `vqgan init --fit-codebook` with the random encoder (every convolution's weights drawn): the
  // encoder's latents of the fit frames (on the cpu backend), then the k-means fit. The thread
  // count is set as OMP_NUM_THREADS sets it (for OpenMP and, when OPENBLAS_NUM_THREADS is unset,
  // for OpenBLAS): before the convolutions tiled their GEMMs themselves, OpenBLAS's thread
  // partition changed the latents' last bits and so the fitted codebook.
  const VqganConfig c = demo_vqgan();
  std::vector<float> frames;
  for (int i = 0; i < 4; ++i) {
    const SyntheticVideo v = make_synthetic_video(draw_video_spec(3, i, 2, 2, 32));
    for (int64_t f = 0; f < 2; ++f) {
      const std::vector<float> x = lwm_frame(v.frame(f), 32, 32, 32);
      frames.insert(frames.end(), x.begin(), x.end());
    }
  }
  const int saved_omp = omp_get_max_threads(), saved_blas = openblas_get_num_threads();
  auto init = [&](int threads, std::vector<float>* latents, std::vector<float>* codebook) {
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    std::unique_ptr<device::Backend> backend = device::make_backend("cpu");
    const std::vector<float> weights = make_vqgan_weights(c, 1, VqganEncoderInit::random);
    *latents = encoder_latent_vectors(*backend, c, weights, frames.data(), 8, 4);
    *codebook = fit_codebook_kmeans(*latents, 8, 64, 10, 1);
  };
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  std::vector<float> latents1, codebook1;
  init(1, &latents1, &codebook1);
  REQUIRE(latents1.size() == static_cast<std::size_t>(8 * 16 * 8));
  for (int threads : {2, 4}) {
    INFO(threads << " threads");
    std::vector<float> latents, codebook;
    init(threads, &latents, &codebook);
    CHECK(same_bits(latents, latents1));
    CHECK(same_bits(codebook, codebook1));
  }
  omp_set_num_threads(saved_omp);
  openblas_set_num_threads(saved_blas);
}
