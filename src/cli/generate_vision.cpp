// generate_vision.cpp: see generate_vision.h.
#include "src/cli/generate_vision.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "device/exec_context.h"
#include "io/image_file.h"
#include "io/video_gif_writer.h"
#include "io/video_mp4_writer.h"
#include "io/vqgan_codes.h"
#include "mpi/runtime.h"
#include "src/cli/vision_inputs.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"
#include "src/vision/frame_encoder.h"
#include "src/vision/frame_preprocess.h"
#include "src/vision/vision_sequence.h"
#include "src/vision/vqgan_model.h"

namespace fs = std::filesystem;

namespace rw::cli {
namespace {

// A frame to encode: an image file (read when encoded) or a video frame already cut to the
// model's size (S x S x 3 bytes).
struct PendingFrame {
  std::string image_path;
  std::vector<uint8_t> rgb;
};

}  // namespace

PromptVision encode_prompt_frames(device::Backend& backend, const vision::VqganWeights& weights,
                                  const std::vector<std::string>& images, const std::string& video, double fps,
                                  int64_t max_frames) {
  const vision::VqganConfig& c = weights.config;
  const int64_t S = c.image_size;
  std::vector<std::vector<PendingFrame>> blocks;
  for (const std::string& image : images) {
    if (vision_input_kind(image) != VisionInputKind::image)
      throw InputError("--image '" + image + "' is not a PNG or JPEG file (a video goes to --video)");
    blocks.push_back({PendingFrame{image, {}}});
  }
  if (!video.empty()) {
    std::vector<PendingFrame> all;
    for_each_input_frame(video, fps, true, [&](const std::string& source, const io::RgbImage* decoded) {
      PendingFrame f;
      if (decoded) f.rgb = vision::frame_to_rgb(model_frame(*decoded, S).data(), S);
      else f.image_path = source;
      all.push_back(std::move(f));
    });
    if (all.empty()) throw InputError("--video '" + video + "' holds no frames");
    std::vector<PendingFrame> chosen;
    for (int64_t i : vision::uniform_frame_indices(static_cast<int64_t>(all.size()), max_frames))
      chosen.push_back(std::move(all[static_cast<std::size_t>(i)]));
    blocks.push_back(std::move(chosen));
  }
  PromptVision out;
  out.codes_per_frame = c.codes_per_frame();
  out.codebook_size = c.codebook_size;
  int64_t largest = 1;
  for (const auto& b : blocks) largest = std::max<int64_t>(largest, static_cast<int64_t>(b.size()));
  vision::FrameEncoder encoder(backend, c, weights.values, std::min<int64_t>(largest, 4));
  const int64_t floats = encoder.frame_floats();
  for (const auto& block : blocks) {
    std::vector<int32_t> codes;
    for (std::size_t first = 0; first < block.size(); first += 4) {
      const std::size_t n = std::min<std::size_t>(4, block.size() - first);
      std::vector<float> host(n * static_cast<std::size_t>(floats));
      for (std::size_t i = 0; i < n; ++i) {
        const PendingFrame& f = block[first + i];
        const std::vector<float> frame =
            f.image_path.empty() ? vision::lwm_frame(f.rgb.data(), S, S, S) : model_frame(io::read_image(f.image_path), S);
        std::copy(frame.begin(), frame.end(), host.begin() + static_cast<std::ptrdiff_t>(i * floats));
      }
      const std::vector<int32_t> batch = encoder.encode(host.data(), static_cast<int64_t>(n));
      codes.insert(codes.end(), batch.begin(), batch.end());
    }
    out.frames += static_cast<int64_t>(block.size());
    out.blocks.push_back(std::move(codes));
  }
  return out;
}

PromptVision read_prompt_codes(const std::string& path, int64_t max_frames, const vision::VqganConfig* vqgan) {
  const io::VqganCodesHeader header = io::read_vqgan_codes_header(path);
  if (vqgan && (header.size != vqgan->latent_size() || header.codebook_size != vqgan->codebook_size))
    throw InputError("'" + path + "' holds " + std::to_string(header.size) + "x" + std::to_string(header.size) +
                     " codes of a codebook of " + std::to_string(header.codebook_size) + "; the --vqgan model (" +
                     vqgan->describe() + ") makes " + std::to_string(vqgan->latent_size()) + "x" +
                     std::to_string(vqgan->latent_size()) + " of " + std::to_string(vqgan->codebook_size));
  if (header.frames < 1) throw InputError("'" + path + "' holds no frames");
  TokenRun all;
  all.start = 0;
  all.count = header.frames;
  all.stride = 1;
  const std::vector<int32_t> codes = io::read_vqgan_codes(path, header, all);
  PromptVision out;
  out.codes_per_frame = header.size * header.size;
  out.codebook_size = header.codebook_size;
  std::vector<int32_t> block;
  for (int64_t f : vision::uniform_frame_indices(header.frames, max_frames)) {
    const auto from = codes.begin() + f * out.codes_per_frame;
    block.insert(block.end(), from, from + out.codes_per_frame);
    ++out.frames;
  }
  out.blocks.push_back(std::move(block));
  return out;
}

std::string vision_output_format(const std::string& output, const std::string& format) {
  if (!format.empty()) {
    if (format != "png" && format != "gif" && format != "mp4")
      throw InputError("--format must be png, gif or mp4 (got '" + format + "')");
    return format;
  }
  const std::string ext = fs::path(output).extension().string();
  if (ext == ".gif" || ext == ".GIF") return "gif";
  if (ext == ".mp4" || ext == ".MP4") return "mp4";
  return "png";
}

std::string write_generated_frames(device::Backend& backend, const vision::VqganWeights& weights,
                                   const std::vector<int32_t>& codes, int64_t frames, const std::string& output,
                                   const std::string& format, double fps) {
  const vision::VqganConfig& c = weights.config;
  const int64_t per_frame = c.codes_per_frame(), image_floats = c.out_channels * c.image_size * c.image_size;
  RW_CHECK(static_cast<int64_t>(codes.size()) == frames * per_frame, "write_generated_frames: codes miscounted");
  const int64_t rank = mpi::world_rank(), world = mpi::world_size();
  std::vector<unsigned char> own;  // this rank's frames r, r + N, ..., S x S x 3 bytes each
  std::string error;
  try {
    if (c.out_channels != 3) throw InputError("the VQGAN gives " + std::to_string(c.out_channels) + " channels, not RGB");
    vision::VqganModel model(device::ExecContext::on_default_stream(backend), c);
    model.load_weights(weights.values);
    device::DeviceArray<int32_t> device_codes(backend, static_cast<std::size_t>(per_frame));
    device::DeviceArray<float> image(backend, static_cast<std::size_t>(image_floats));
    std::vector<float> host(static_cast<std::size_t>(image_floats));
    for (int64_t f = rank; f < frames; f += world) {
      device_codes.upload(codes.data() + f * per_frame);
      model.decode_codes(device_codes.data(), 1, image.data());
      image.download(host.data());
      const std::vector<uint8_t> rgb = vision::frame_to_rgb(host.data(), c.image_size);
      own.insert(own.end(), rgb.begin(), rgb.end());
    }
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return error;
  const std::vector<unsigned char> gathered = mpi::gather_bytes_to_root(own);
  if (rank == 0) {
    const std::size_t frame_bytes = static_cast<std::size_t>(3 * c.image_size * c.image_size);
    std::vector<io::RgbImage> images(static_cast<std::size_t>(frames));
    std::size_t at = 0;
    for (int64_t r = 0; r < world; ++r)
      for (int64_t g = r; g < frames; g += world, at += frame_bytes) {
        io::RgbImage& im = images[static_cast<std::size_t>(g)];
        im.width = im.height = static_cast<int>(c.image_size);
        im.pixels.assign(gathered.begin() + static_cast<std::ptrdiff_t>(at),
                         gathered.begin() + static_cast<std::ptrdiff_t>(at + frame_bytes));
      }
    RW_CHECK(at == gathered.size(), "write_generated_frames: gathered frames miscounted");
    try {
      if (format == "gif") {
        io::write_gif(output, images, fps);
      } else if (format == "mp4") {
        io::write_mp4(output, images, fps);
      } else {
        std::error_code ec;
        fs::create_directories(output, ec);
        if (ec || !fs::is_directory(output)) throw InputError("cannot create directory '" + output + "'");
        for (int64_t f = 0; f < frames; ++f) {
          char name[32];
          std::snprintf(name, sizeof name, "frame_%06lld.png", static_cast<long long>(f));
          io::write_png((fs::path(output) / name).string(), images[static_cast<std::size_t>(f)]);
        }
      }
    } catch (const InputError& e) {
      error = e.what();
    }
  }
  return mpi::agree_on_error(error);
}

}  // namespace rw::cli
