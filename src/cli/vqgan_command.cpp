// vqgan_command.cpp: `ringworld vqgan encode` (images -> CODES.h5) and `ringworld vqgan decode`
// (CODES.h5 -> PNG frames) with a weight file from `ringworld import --from diffusers-vq |
// lwm-vqgan` (src/vision/vqgan_weights.h). Data-parallel: rank r of N takes frames r, r + N, ...
// in batches of --batch; every rank loads the whole model. Failures before the collective file
// steps are agreed on (mpi::agree_on_error), so every rank exits with rank 0's one message.
#include <boost/program_options.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/exec_context.h"
#include "io/attn_io.h"
#include "io/image_file.h"
#include "io/input_file.h"
#include "io/video_gif_writer.h"
#include "io/video_mp4_writer.h"
#include "io/vqgan_codes.h"
#include "mpi/runtime.h"
#include "src/cli/commands.h"
#include "src/cli/option_parsing.h"
#include "src/cli/vqgan_demo_command.h"
#include "src/cli/vision_inputs.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/vision/frame_encoder.h"
#include "src/vision/frame_preprocess.h"
#include "src/vision/vqgan_model.h"
#include "src/vision/vqgan_weights.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace rw::cli {
namespace {

const char* kUsage =
    "usage: ringworld vqgan encode --weights VQ.h5 --input IMAGE|VIDEO|DIR... --output CODES.h5 [--fps F] [--device D] [--batch N]\n"
    "       ringworld vqgan decode --weights VQ.h5 --input CODES.h5 --output DIR|VIDEO [--format png|gif|mp4] [--fps F]\n"
    "encode: PNG or JPEG images, video files (every frame, or sampled at --fps) and directories of frame\n"
    "        files (every one, in name order), resized (short side) and centre-cropped to the model's size\n"
    "        as LWM does, scaled to [-1, 1]; CODES.h5 holds int32 [frames, s, s] and the source names\n"
    "        (a video's frames: PATH#K, or PATH@Ffps#K when sampled).\n"
    "decode: frame_000000.png, ... in DIR (created), pixels round((clamp(x, -1, 1) + 1) x 127.5); or all\n"
    "        frames as one animated GIF or MP4 (H.264) at --fps (default 4).\n"
    "Run under mpirun to share the frames out: rank r of N takes frames r, r + N, ...\n"
    "       ringworld vqgan init ...       a VQGAN made here: random or designed (pool) encoder, codebook fitted to frames (init --help)\n"
    "       ringworld vqgan demo-data ...  the vision demo's synthetic videos and records (demo-data --help)\n";

// The frames of this rank: r, r + N, ... below `frames`.
TokenRun my_frames(int64_t frames) {
  const int64_t rank = mpi::world_rank(), world = mpi::world_size();
  TokenRun run;
  run.start = rank;
  run.stride = world;
  run.count = rank < frames ? (frames - rank + world - 1) / world : 0;
  if (run.count == 0) run.start = 0;
  return run;
}

struct Progress {
  double t0 = wall_seconds(), last = 0;
  bool quiet = false;
  void report(const char* verb, int64_t done, int64_t total, bool final) {
    if (quiet || mpi::world_rank() != 0) return;
    const double now = wall_seconds() - t0;
    if (!final && now - last < 2.0) return;
    last = now;
    std::fprintf(stderr, "  rank 0: %s %lld of %lld frames, %.1f s (%.2f frames/s)\n", verb, static_cast<long long>(done),
                 static_cast<long long>(total), now, now > 0 ? done / now : 0.0);
  }
};

// A frame of this rank: an image file, read when its batch comes, or a video frame, cut to the
// model's size when decoded (S x S x 3 bytes: a long video is not held at full size).
struct OwnFrame {
  std::string image_path;
  std::vector<uint8_t> rgb;
};

int run_encode(const std::string& weights_path, const std::vector<std::string>& inputs, const std::string& output,
               const std::string& device_name, int64_t batch, double fps, bool quiet) {
  const bool is_root = mpi::world_rank() == 0;
  auto fail = [&](const std::string& message) {
    if (is_root) std::fprintf(stderr, "ringworld vqgan encode: error: %s\n", message.c_str());
    return 1;
  };
  std::unique_ptr<device::Backend> backend;
  vision::VqganWeights weights;
  std::vector<std::string> sources;
  std::vector<OwnFrame> own;
  std::string error;
  try {
    io::check_output_path(output);
    for (const std::string& in : inputs) vision_input_kind(in);  // exists and readable, before the weights load
    backend = device::make_backend(device_name);
    weights = vision::read_vqgan_weights(weights_path);
    // Every rank walks every input in order (so all agree on the frame numbers) and keeps its
    // own frames, r, r + N, ...; a video is decoded by every rank.
    const int64_t S = weights.config.image_size, rank = mpi::world_rank(), world = mpi::world_size();
    for (const std::string& in : inputs)
      for_each_input_frame(in, fps, false, [&](const std::string& source, const io::RgbImage* decoded) {
        const int64_t g = static_cast<int64_t>(sources.size());
        sources.push_back(source);
        if (g % world != rank) return;
        OwnFrame f;
        if (decoded) f.rgb = vision::frame_to_rgb(model_frame(*decoded, S).data(), S);
        else f.image_path = source;
        own.push_back(std::move(f));
      });
    if (sources.empty()) throw InputError("the inputs hold no frames");
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  const vision::VqganConfig& c = weights.config;
  const int64_t frames = static_cast<int64_t>(sources.size());
  const TokenRun run = my_frames(frames);
  RW_CHECK(run.count == static_cast<int64_t>(own.size()), "vqgan encode: this rank's frames miscounted");
  if (is_root && !quiet) {
    std::printf("ringworld vqgan encode: %s, %lld frames from %zu input(s) on %d ranks, %s\n", c.describe().c_str(),
                static_cast<long long>(frames), inputs.size(), mpi::world_size(), backend->name().c_str());
    std::fflush(stdout);
  }
  const int64_t s = c.latent_size(), per_frame = s * s;
  std::vector<int32_t> codes(static_cast<std::size_t>(run.count * per_frame));
  Progress progress;
  progress.quiet = quiet;
  try {
    vision::FrameEncoder encoder(*backend, c, weights.values, std::min<int64_t>(batch, std::max<int64_t>(run.count, 1)));
    weights.values = {};
    const int64_t b = std::min<int64_t>(batch, std::max<int64_t>(run.count, 1)), image_floats = encoder.frame_floats();
    std::vector<float> host(static_cast<std::size_t>(b * image_floats));
    for (int64_t first = 0; first < run.count; first += b) {
      const int64_t n = std::min(b, run.count - first);
      for (int64_t i = 0; i < n; ++i) {
        const OwnFrame& f = own[static_cast<std::size_t>(first + i)];
        const std::vector<float> frame = f.image_path.empty() ? vision::lwm_frame(f.rgb.data(), c.image_size, c.image_size, c.image_size)
                                                              : model_frame(io::read_image(f.image_path), c.image_size);
        std::copy(frame.begin(), frame.end(), host.begin() + i * image_floats);
      }
      const std::vector<int32_t> batch_codes = encoder.encode(host.data(), n);
      std::copy(batch_codes.begin(), batch_codes.end(), codes.begin() + first * per_frame);
      progress.report("encoded", first + n, run.count, false);
    }
    progress.report("encoded", run.count, run.count, true);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  io::VqganCodesHeader header;
  header.frames = frames;
  header.size = s;
  header.codebook_size = c.codebook_size;
  header.weights = weights_path;
  header.sources = sources;
  try {
    io::write_vqgan_codes(output, header, run, codes.data());
  } catch (const InputError& e) {
    return fail(e.what());
  }
  const double seconds = mpi::allreduce_max(wall_seconds() - progress.t0);
  if (is_root && !quiet)
    std::printf("ringworld vqgan encode: wrote %s (%lld frames x %lld codes) in %.1f s\n", output.c_str(),
                static_cast<long long>(frames), static_cast<long long>(per_frame), seconds);
  return 0;
}

// format: "png" (frame_NNNNNN.png in the directory output), "gif" or "mp4" (one file, output,
// at fps frames a second: every rank's frames gathered on rank 0, which writes it).
int run_decode(const std::string& weights_path, const std::string& input, const std::string& output_dir,
               const std::string& device_name, int64_t batch, const std::string& format, double fps, bool quiet) {
  const bool to_video = format != "png";
  const bool is_root = mpi::world_rank() == 0;
  auto fail = [&](const std::string& message) {
    if (is_root) std::fprintf(stderr, "ringworld vqgan decode: error: %s\n", message.c_str());
    return 1;
  };
  std::unique_ptr<device::Backend> backend;
  vision::VqganWeights weights;
  std::string error;
  try {
    io::check_input_file(input, "codes file");
    backend = device::make_backend(device_name);
    weights = vision::read_vqgan_weights(weights_path);
    std::error_code ec;
    if (to_video) io::check_output_path(output_dir);
    else if (is_root) fs::create_directories(output_dir, ec);
    if (ec) throw InputError("cannot create directory '" + output_dir + "': " + ec.message());
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  io::VqganCodesHeader header;
  try {
    header = io::read_vqgan_codes_header(input);
    const vision::VqganConfig& c = weights.config;
    if (header.size != c.latent_size() || header.codebook_size != c.codebook_size)
      throw InputError("'" + input + "' holds " + std::to_string(header.size) + "x" + std::to_string(header.size) +
                       " codes of " + std::to_string(header.codebook_size) + "; the weights' model (" + c.describe() +
                       ") takes " + std::to_string(c.latent_size()) + "x" + std::to_string(c.latent_size()) + " of " +
                       std::to_string(c.codebook_size));
    if (!to_video && !fs::is_directory(output_dir)) throw InputError("'" + output_dir + "' is not a directory");
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  const vision::VqganConfig& c = weights.config;
  const TokenRun run = my_frames(header.frames);
  std::vector<int32_t> codes;
  try {
    codes = io::read_vqgan_codes(input, header, run);
  } catch (const InputError& e) {
    return fail(e.what());
  }
  if (is_root && !quiet) {
    std::printf("ringworld vqgan decode: %s, %lld frames on %d ranks, %s\n", c.describe().c_str(),
                static_cast<long long>(header.frames), mpi::world_size(), backend->name().c_str());
    std::fflush(stdout);
  }
  const int64_t per_frame = header.size * header.size, image_floats = c.out_channels * c.image_size * c.image_size;
  Progress progress;
  progress.quiet = quiet;
  std::vector<unsigned char> own_rgb;  // gif, mp4: this rank's frames in order, S x S x 3 bytes each
  try {
    if (c.out_channels != 3) throw InputError("decode writes RGB frames; the model gives " + std::to_string(c.out_channels) + " channels");
    vision::VqganModel model(device::ExecContext::on_default_stream(*backend), c);
    model.load_weights(weights.values);
    weights.values = {};
    const int64_t b = std::min<int64_t>(batch, std::max<int64_t>(run.count, 1));
    device::DeviceArray<int32_t> device_codes(*backend, static_cast<std::size_t>(b * per_frame));
    device::DeviceArray<float> images(*backend, static_cast<std::size_t>(b * image_floats));
    std::vector<int32_t> batch_codes(static_cast<std::size_t>(b * per_frame), 0);
    std::vector<float> host(static_cast<std::size_t>(b * image_floats));
    for (int64_t first = 0; first < run.count; first += b) {
      const int64_t n = std::min(b, run.count - first);
      std::copy(codes.begin() + first * per_frame, codes.begin() + (first + n) * per_frame, batch_codes.begin());
      device_codes.upload(batch_codes.data());
      model.decode_codes(device_codes.data(), n, images.data());
      images.download(host.data());
      for (int64_t i = 0; i < n; ++i) {
        io::RgbImage image;
        image.width = image.height = c.image_size;
        image.pixels = vision::frame_to_rgb(host.data() + i * image_floats, c.image_size);
        if (to_video) {
          own_rgb.insert(own_rgb.end(), image.pixels.begin(), image.pixels.end());
          continue;
        }
        char name[32];
        std::snprintf(name, sizeof name, "frame_%06lld.png", static_cast<long long>(run.start + run.stride * (first + i)));
        io::write_png((fs::path(output_dir) / name).string(), image);
      }
      progress.report("decoded", first + n, run.count, false);
    }
    progress.report("decoded", run.count, run.count, true);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  if (to_video) {
    // Rank r's j-th frame is frame r + j N of the video.
    const std::vector<unsigned char> gathered = mpi::gather_bytes_to_root(own_rgb);
    if (is_root) {
      const std::size_t frame_bytes = static_cast<std::size_t>(3 * c.image_size * c.image_size);
      const int64_t world = mpi::world_size();
      std::vector<io::RgbImage> frames(static_cast<std::size_t>(header.frames));
      std::size_t at = 0;
      for (int64_t r = 0; r < world; ++r)
        for (int64_t g = r; g < header.frames; g += world, at += frame_bytes) {
          io::RgbImage& f = frames[static_cast<std::size_t>(g)];
          f.width = f.height = c.image_size;
          f.pixels.assign(gathered.begin() + static_cast<std::ptrdiff_t>(at), gathered.begin() + static_cast<std::ptrdiff_t>(at + frame_bytes));
        }
      RW_CHECK(at == gathered.size(), "vqgan decode: gathered frames miscounted");
      try {
        if (format == "gif") io::write_gif(output_dir, frames, fps);
        else io::write_mp4(output_dir, frames, fps);
      } catch (const InputError& e) {
        error = e.what();
      }
    }
    if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  }
  const double seconds = mpi::allreduce_max(wall_seconds() - progress.t0);
  if (is_root && !quiet && to_video)
    std::printf("ringworld vqgan decode: wrote %lld frames to %s (%s, %g frames/s) in %.1f s\n", static_cast<long long>(header.frames),
                output_dir.c_str(), format == "gif" ? "animated GIF" : io::mp4_encoder_name().c_str(), fps, seconds);
  else if (is_root && !quiet)
    std::printf("ringworld vqgan decode: wrote %lld frames to %s in %.1f s\n", static_cast<long long>(header.frames),
                output_dir.c_str(), seconds);
  return 0;
}

}  // namespace

int run_vqgan(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  if (argc >= 2 && std::string(argv[1]) == "init") return run_vqgan_init(argc - 1, argv + 1);
  if (argc >= 2 && std::string(argv[1]) == "demo-data") return run_vqgan_demo_data(argc - 1, argv + 1);
  std::string mode, weights, output, device_name = "cpu";
  std::vector<std::string> inputs;
  int64_t batch = 4;
  double fps = 0;
  std::string format = "png";
  bool quiet = false;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")
      ("weights", po::value(&weights), "VQGAN weight file (ringworld import --from diffusers-vq | lwm-vqgan)")
      ("input", po::value(&inputs)->multitoken(),
       "encode: images (PNG, JPEG), video files, directories of frames; decode: CODES.h5")
      ("output", po::value(&output), "encode: CODES.h5 (atomic); decode: a directory (png) or a file (gif, mp4)")
      ("fps", po::value(&fps), "encode: sample video files at this rate (default: every frame); "
                               "decode: frame rate of the gif or mp4 (default 4)")
      ("format", po::value(&format)->default_value(format), "decode: png (frames), gif (animated) or mp4 (H.264)")
      ("device", po::value(&device_name)->default_value(device_name), device_option_help().c_str())
      ("batch", po::value(&batch)->default_value(batch), "frames per forward pass on each rank")
      ("quiet", po::bool_switch(&quiet), "print nothing on success");
  po::options_description hidden;
  hidden.add_options()("mode", po::value(&mode));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description positional;
  positional.add("mode", 1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kUsage << "\n" << desc << "\n";
      return 0;
    }
    if (mode != "encode" && mode != "decode") throw InputError("the first argument must be encode, decode, init or demo-data (got '" + mode + "')");
    if (weights.empty() || inputs.empty() || output.empty()) throw InputError("--weights, --input and --output are required");
    if (mode == "decode" && inputs.size() != 1) throw InputError("decode takes one --input CODES.h5");
    if (batch < 1) throw InputError("--batch must be >= 1");
    if (vm.count("fps") && !(fps > 0 && fps <= 1000)) throw InputError("--fps must be in (0, 1000]");
    if (format != "png" && format != "gif" && format != "mp4") throw InputError("--format must be png, gif or mp4 (got '" + format + "')");
    if (mode == "encode" && vm["format"].defaulted() == false) throw InputError("--format is for decode");
    if (mode == "decode" && fps == 0) fps = 4;
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld vqgan: error: %s\n%s", e.what(), kUsage);
    return 2;
  }
  if (mode == "encode") return run_encode(weights, inputs, output, device_name, batch, fps, quiet);
  return run_decode(weights, inputs[0], output, device_name, batch, format, fps, quiet);
}

}  // namespace rw::cli
