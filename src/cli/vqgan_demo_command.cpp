// vqgan_demo_command.cpp: see vqgan_demo_command.h. Both run on rank 0 (the work is small); other
// ranks wait for its result and exit with the same status.
#include "src/cli/vqgan_demo_command.h"

#include <boost/program_options.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "device/backend.h"
#include "io/attn_io.h"
#include "io/image_file.h"
#include "io/input_file.h"
#include "io/run_directory.h"
#include "mpi/runtime.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/cli/vision_inputs.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/vision/frame_preprocess.h"
#include "src/vision/synthetic_video.h"
#include "src/vision/vqgan_import.h"
#include "src/vision/vqgan_init.h"
#include "src/vision/vqgan_weights.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace rw::cli {
namespace {

const char* kInitUsage =
    "usage: ringworld vqgan init --config NAME|CONFIG.json [--image-size S] --seed N [--fit-codebook FRAMES...]\n"
    "                            [--fit-iterations K] [--encoder random|pool] --output VQ.h5\n"
    "A VQGAN made here, not imported: every convolution weight and bias uniform in +-1/sqrt(fan_in),\n"
    "GroupNorm 1 and 0, the codebook uniform in +-1/K (PyTorch's and diffusers' defaults), from --seed;\n"
    "with --encoder pool the encoder is designed instead: each latent is its cell's mean colour,\n"
    "normalised over the frame (src/vision/vqgan_init.h; a random encoder's codes change with position).\n"
    "With --fit-codebook, the codebook is then fitted by k-means (k-means++ seeding, K Lloyd iterations)\n"
    "to the encoder's latents of the frames given (images, directories of frames, video files): codes then\n"
    "stand for what the random encoder tells apart. The decoder stays untrained: decoded frames are rough.\n"
    "--config: a preset (lwm, tiny, tiny-1) or a diffusers VQModel config.json (--image-size sets S, default 256).\n";

const char* kDemoDataUsage =
    "usage: ringworld vqgan demo-data --output DIR --videos N --frames MIN[:MAX] [--size S] [--seed N] [--fit-frames M]\n"
    "The vision demo's data (src/vision/synthetic_video.h): N seeded videos of S x S frames (S a multiple of 8,\n"
    "default 32), each of MIN..MAX frames, a light square moving on a dark background, and in one frame (drawn\n"
    "uniformly) a big square of one of 6 colours. Writes DIR/videos/NNNNNN/frame_NNNN.png, DIR/records.jsonl\n"
    "({\"text\": \"Q: what colour was the big square? A: red.\", \"video\": \"videos/NNNNNN\"}, one per video, for\n"
    "`prepare --vision --vision-task caption`) and, with --fit-frames M, DIR/fit/: M frames with the needle per\n"
    "colour and 6 x M without (for `vqgan init --fit-codebook`: every colour weighs alike in the fit).\n";

vision::VqganConfig config_from(const std::string& name, int64_t image_size, bool size_given) {
  vision::VqganConfig c;
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) {
    io::check_input_file(name, "VQGAN config");
    std::ifstream in(name);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    c = vision::parse_diffusers_vq_config(text, name, size_given ? image_size : 256, nullptr);
  } else {
    c = vision::VqganConfig::preset(name);
    if (size_given) c.image_size = image_size;
  }
  c.validate();
  return c;
}

}  // namespace

int run_vqgan_init(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string config_name, output;
  std::vector<std::string> fit;
  int64_t image_size = 256, seed = -1;
  int iterations = 10;
  std::string encoder_init = "random";
  po::options_description desc("vqgan init options");
  desc.add_options()("help,h", "show this help")
      ("config", po::value(&config_name), "lwm | tiny | tiny-1 | a diffusers VQModel config.json")
      ("image-size", count(&image_size)->min(1)->default_value(image_size), "frame size S (config.json, or to replace a preset's)")
      ("seed", number(&seed)->min(0), "seed of the weights and of the k-means seeding")
      ("fit-codebook", po::value(&fit)->multitoken(), "frames to fit the codebook to (images, frame directories, videos)")
      ("encoder", po::value(&encoder_init)->default_value(encoder_init),
       "random (every tensor drawn) or pool (a designed encoder: each code's latent is its cell's mean colour, "
       "normalised over the frame; src/vision/vqgan_init.h)")
      ("fit-iterations", count(&iterations)->min(0)->default_value(iterations), "Lloyd iterations of the fit")
      ("output", po::value(&output), "VQ.h5 (written atomically)");
  vision::VqganConfig config;
  try {
    po::variables_map vm;
    store_command_line(parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kInitUsage << "\n" << desc << "\n";
      return 0;
    }
    if (config_name.empty() || output.empty() || !vm.count("seed")) throw InputError("--config, --seed and --output are required");
    if (encoder_init != "pool" && encoder_init != "random")
      throw InputError("--encoder must be random or pool (got '" + encoder_init + "')");
    if (vm.count("fit-codebook") && fit.empty()) throw InputError("--fit-codebook needs at least one path");
    config = config_from(config_name, image_size, !vm["image-size"].defaulted());
    io::check_output_path(output);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld vqgan init: error: %s\n%s", e.what(), kInitUsage);
    return 2;
  }
  std::string error;
  if (is_root) {
    try {
      const double t0 = wall_seconds();
      std::vector<float> weights = vision::make_vqgan_weights(
          config, static_cast<uint64_t>(seed), encoder_init == "pool" ? vision::VqganEncoderInit::pool : vision::VqganEncoderInit::random);
      std::printf("ringworld vqgan init: %s, %zu parameters, seed %lld, %s encoder\n", config.describe().c_str(),
                  weights.size(), static_cast<long long>(seed), encoder_init.c_str());
      std::string source = "init:seed=" + std::to_string(seed) + ",encoder=" + encoder_init;
      if (!fit.empty()) {
        std::vector<float> frames;
        int64_t n = 0;
        for (const std::string& path : fit) {
          vision_input_kind(path);
          for_each_input_frame(path, 0, false, [&](const std::string& where, const io::RgbImage* decoded) {
            const std::vector<float> f = decoded ? model_frame(*decoded, config.image_size)
                                                 : model_frame(io::read_image(where), config.image_size);
            frames.insert(frames.end(), f.begin(), f.end());
            ++n;
          });
        }
        if (n == 0) throw InputError("--fit-codebook: the paths hold no frames");
        std::unique_ptr<device::Backend> backend = device::make_backend("cpu");
        const std::vector<float> latents = vision::encoder_latent_vectors(*backend, config, weights, frames.data(), n, 16);
        const int64_t off = vision::codebook_offset(config), dim = config.codebook_dim;
        const std::vector<float> random_codebook(weights.begin() + off, weights.begin() + off + config.codebook_size * dim);
        const std::vector<float> fitted =
            vision::fit_codebook_kmeans(latents, dim, config.codebook_size, iterations, static_cast<uint64_t>(seed));
        std::copy(fitted.begin(), fitted.end(), weights.begin() + off);
        std::printf("  codebook fitted to %lld latent vectors of %lld frames (%d k-means iterations): mean squared "
                    "quantization error %.4g (the random codebook's: %.4g)\n",
                    static_cast<long long>(latents.size() / dim), static_cast<long long>(n), iterations,
                    vision::quantization_error(latents, fitted, dim), vision::quantization_error(latents, random_codebook, dim));
        source += ",fit=" + std::to_string(n) + "frames,iterations=" + std::to_string(iterations);
      }
      int64_t at = 0;
      vision::write_vqgan_weights(output, config, source, [&](const vision::VqganTensor& t, float* out) {
        std::copy(weights.begin() + at, weights.begin() + at + t.count(), out);
        at += t.count();
      });
      std::printf("ringworld vqgan init: wrote %s in %.1f s\n", output.c_str(), wall_seconds() - t0);
    } catch (const InputError& e) {
      error = e.what();
    }
  }
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root) std::fprintf(stderr, "ringworld vqgan init: error: %s\n", error.c_str());
    return 1;
  }
  return 0;
}

int run_vqgan_demo_data(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string output, frames_text;
  int64_t videos = 0, size = 32, seed = 1, fit_frames = 0, min_frames = 0, max_frames = 0;
  po::options_description desc("vqgan demo-data options");
  desc.add_options()("help,h", "show this help")
      ("output", po::value(&output), "directory to write (created)")
      ("videos", count(&videos)->min(1), "videos to write")
      ("frames", po::value(&frames_text), "frames per video: N or MIN:MAX (drawn uniformly)")
      ("size", count(&size)->min(8)->default_value(size), "frame size S (a multiple of 8)")
      ("seed", number(&seed)->min(0)->default_value(seed), "seed of the videos")
      ("fit-frames", count(&fit_frames)->min(0)->default_value(fit_frames), "frames per colour in DIR/fit (0: none)");
  try {
    po::variables_map vm;
    store_command_line(parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kDemoDataUsage << "\n" << desc << "\n";
      return 0;
    }
    if (output.empty() || !vm.count("videos") || frames_text.empty()) throw InputError("--output, --videos and --frames are required");
    const std::size_t colon = frames_text.find(':');
    try {
      std::size_t used = 0;
      min_frames = std::stoll(frames_text.substr(0, colon), &used);
      if (used != (colon == std::string::npos ? frames_text.size() : colon)) throw InputError("");
      max_frames = colon == std::string::npos ? min_frames : std::stoll(frames_text.substr(colon + 1), &used);
      if (colon != std::string::npos && used != frames_text.size() - colon - 1) throw InputError("");
    } catch (const std::exception&) {
      throw InputError("--frames must be N or MIN:MAX (whole numbers), got '" + frames_text + "'");
    }
    if (min_frames < 1 || max_frames < min_frames || max_frames > 100000)
      throw InputError("--frames must satisfy 1 <= MIN <= MAX <= 100000, got '" + frames_text + "'");
    vision::SyntheticVideoSpec probe;
    probe.frame_size = size;
    vision::check_video_spec(probe);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld vqgan demo-data: error: %s\n%s", e.what(), kDemoDataUsage);
    return 2;
  }
  std::string error;
  if (is_root) {
    try {
      const double t0 = wall_seconds();
      std::error_code ec;
      fs::create_directories(fs::path(output) / "videos", ec);
      if (ec) throw InputError("cannot create '" + output + "/videos': " + ec.message());
      auto write_frame = [&](const fs::path& path, const uint8_t* rgb) {
        io::RgbImage image;
        image.width = image.height = size;
        image.pixels.assign(rgb, rgb + size * size * 3);
        io::write_png(path.string(), image);
      };
      std::string records;
      int64_t total_frames = 0;
      std::vector<int64_t> per_colour(vision::kNeedleColours, 0);
      for (int64_t v = 0; v < videos; ++v) {
        const vision::SyntheticVideoSpec spec = vision::draw_video_spec(static_cast<uint64_t>(seed), v, min_frames, max_frames, size);
        const vision::SyntheticVideo video = vision::make_synthetic_video(spec);
        char name[32];
        std::snprintf(name, sizeof name, "videos/%06lld", static_cast<long long>(v));
        const fs::path dir = fs::path(output) / name;
        fs::create_directories(dir, ec);
        if (ec) throw InputError("cannot create '" + dir.string() + "': " + ec.message());
        for (int64_t f = 0; f < spec.frames; ++f) {
          char frame[32];
          std::snprintf(frame, sizeof frame, "frame_%04lld.png", static_cast<long long>(f));
          write_frame(dir / frame, video.frame(f));
        }
        total_frames += spec.frames;
        ++per_colour[static_cast<std::size_t>(spec.colour)];
        const nlohmann::json record = {{"text", vision::visual_needle_caption(spec.colour)}, {"video", name}};
        records += record.dump() + "\n";
      }
      const std::string records_path = (fs::path(output) / "records.jsonl").string();
      io::write_text_file_atomically(records_path, records);
      std::printf("ringworld vqgan demo-data: %lld videos (%lld frames of %lldx%lld, %lld-%lld per video; needle colours",
                  static_cast<long long>(videos), static_cast<long long>(total_frames), static_cast<long long>(size),
                  static_cast<long long>(size), static_cast<long long>(min_frames), static_cast<long long>(max_frames));
      for (int c = 0; c < vision::kNeedleColours; ++c)
        std::printf(" %s %lld", vision::needle_colour_name(c), static_cast<long long>(per_colour[static_cast<std::size_t>(c)]));
      std::printf(") -> %s\n", records_path.c_str());
      if (fit_frames > 0) {
        const fs::path dir = fs::path(output) / "fit";
        fs::create_directories(dir, ec);
        if (ec) throw InputError("cannot create '" + dir.string() + "': " + ec.message());
        // Two-frame videos with the needle in the second: frame 1 has it, frame 0 does not.
        int64_t k = 0;
        for (int c = 0; c < vision::kNeedleColours; ++c)
          for (int64_t j = 0; j < fit_frames; ++j) {
            vision::SyntheticVideoSpec spec = vision::draw_video_spec(static_cast<uint64_t>(seed) ^ 0x666974ULL, k, 2, 2, size);
            spec.needle_frame = 1;
            spec.colour = c;
            const vision::SyntheticVideo video = vision::make_synthetic_video(spec);
            for (int64_t f = 0; f < 2; ++f) {
              char frame[32];
              std::snprintf(frame, sizeof frame, "fit_%06lld.png", static_cast<long long>(2 * k + f));
              write_frame(dir / frame, video.frame(f));
            }
            ++k;
          }
        std::printf("  %lld frames to fit a codebook to in %s (half with the needle, every colour alike)\n",
                    static_cast<long long>(2 * k), dir.string().c_str());
      }
      std::printf("ringworld vqgan demo-data: done in %.1f s\n", wall_seconds() - t0);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root) std::fprintf(stderr, "ringworld vqgan demo-data: error: %s\n", error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace rw::cli
