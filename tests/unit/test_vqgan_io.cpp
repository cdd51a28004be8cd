// test_vqgan_io.cpp: the VQGAN's files and frames (src/vision/vqgan_import.h, vqgan_weights.h,
// frame_preprocess.h; io/image_file.h) against the fixture of an independent implementation
// (tests/fixtures/make_tiny_vqgan.py: PIL for LWM's preprocessing, plain PyTorch for the VQGAN):
//   * diffusers' directory imported (F16 weights) and written/read back as VQ.h5; the PNG and the
//     JPEG read and preprocessed give PIL's frames exactly (bicubic resize + crop + scale);
//   * encode + quantize give the fixture's codes exactly (the generator kept every position's best
//     code ahead of the second by a relative margin > 1e-3, far above float32 rounding);
//   * decode(codes) within the project's rule (tests/test_support.h): |R - G| <= 2 |N - G| + 8
//     eps |G|, G = PyTorch in float64, N = PyTorch in float32;
//   * the quantizer returns i for codebook vector i through the whole import path;
//   * LWM's flax names: a msgpack stream written here (HWIO kernels, flax names, built from the
//     diffusers tensors by this test's own transposition) imports to the same values;
//   * bad input: one clear InputError each (files written here).
// About 0.3 s.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>

#include <cfloat>
#include <cstring>
#include <functional>
#include <iterator>
#include <map>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/input_error_check.h"
#include "device/backend.h"
#include "io/image_file.h"
#include "io/tensor_h5.h"
#include "src/common/input_error.h"
#include "src/vision/frame_preprocess.h"
#include "src/vision/vqgan_import.h"
#include "src/vision/vqgan_model.h"
#include "src/vision/vqgan_weights.h"
#include "tests/model_files_support.h"
#include "tests/test_support.h"

#ifndef RW_FIXTURES_DIR
#error "RW_FIXTURES_DIR (tests/fixtures) must be defined"
#endif

namespace fs = std::filesystem;
using namespace rw;
using namespace rw::vision;

namespace {

const fs::path kFixture = fs::path(RW_FIXTURES_DIR) / "tiny_vqgan";


struct Scratch {
  fs::path path;
  explicit Scratch(const std::string& name) : path(fs::temp_directory_path() / ("rw_vqgan_io_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Scratch() { fs::remove_all(path); }
};

template <class T>
std::vector<T> stored(const test::StoredSafetensors& s, const std::string& name) {
  const test::StoredTensor& t = s.tensors.at(name);
  std::vector<T> v(t.bytes.size() / sizeof(T));
  std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

VqganWeights import_fixture(const fs::path& dir, const Scratch& scratch) {
  const auto src = open_diffusers_vq(dir.string(), 16);
  const std::string out = (scratch.path / "vq.h5").string();
  write_vqgan_weights(out, src->config(), src->description(), [&](const VqganTensor& t, float* o) { src->fetch(t, o); });
  return read_vqgan_weights(out);
}

// A copy of the fixture directory whose safetensors file is replaced by `bytes` (config kept).
fs::path fixture_copy(const Scratch& scratch, const std::string& name) {
  const fs::path dir = scratch.path / name;
  fs::create_directories(dir);
  fs::copy_file(kFixture / "config.json", dir / "config.json");
  return dir;
}

}  // namespace

TEST_CASE("VQGAN fixture: PIL's frames, PyTorch's codes and pixels", "[vqgan][vqgan_io]") {
  Scratch scratch("fixture");
  const VqganWeights w = import_fixture(kFixture, scratch);
  const VqganConfig& c = w.config;
  REQUIRE(c.image_size == 16);
  REQUIRE(c.latent_size() == 4);
  REQUIRE(c.codebook_dim == 3);
  const test::StoredSafetensors expected = test::read_safetensors_file((kFixture / "expected.safetensors").string());
  const std::vector<float> frames_ref = stored<float>(expected, "frames");
  const std::vector<int32_t> codes_ref = stored<int32_t>(expected, "codes");
  const std::vector<double> decoded64 = stored<double>(expected, "decoded_fp64");
  const std::vector<float> decoded32 = stored<float>(expected, "decoded_fp32");

  std::vector<float> frames;
  for (const char* name : {"landscape.png", "portrait.jpg"}) {
    const io::RgbImage image = io::read_image((kFixture / name).string());
    const std::vector<float> f = lwm_frame(image.pixels.data(), image.width, image.height, 16);
    frames.insert(frames.end(), f.begin(), f.end());
  }
  REQUIRE(frames.size() == frames_ref.size());
  CHECK(frames == frames_ref);  // bytes equal PIL's, so the floats are equal

  auto be = device::make_backend("cpu");
  VqganModel model(device::ExecContext::on_default_stream(*be), c);
  model.load_weights(w.values);
  device::DeviceArray<float> in(*be, frames.size()), z(*be, 2 * 3 * 16), out(*be, decoded32.size());
  device::DeviceArray<int32_t> codes(*be, 2 * 16);
  in.upload(frames_ref.data());
  model.encode(in.data(), 2, z.data());
  model.quantize(z.data(), 2, codes.data(), nullptr);
  std::vector<int32_t> got(2 * 16);
  codes.download(got.data());
  CHECK(got == codes_ref);

  codes.upload(codes_ref.data());
  model.decode_codes(codes.data(), 2, out.data());
  std::vector<float> pixels(decoded32.size());
  out.download(pixels.data());
  for (float& p : pixels) p = std::min(1.0f, std::max(-1.0f, p));  // LWM clips the decoder's output
  const double err = test::max_abs_error(pixels, decoded64), tol = test::tolerance(decoded32, decoded64);
  INFO("max error " << err << ", tolerance " << tol);
  CHECK(err <= tol);
  CHECK(test::max_abs(decoded64) > 0.1);  // not a degenerate output
}

TEST_CASE("VQGAN import: the quantizer returns i for codebook vector i", "[vqgan][vqgan_io]") {
  Scratch scratch("identity");
  const VqganWeights w = import_fixture(kFixture, scratch);
  const VqganConfig& c = w.config;
  auto be = device::make_backend("cpu");
  VqganModel model(device::ExecContext::on_default_stream(*be), c);
  model.load_weights(w.values);
  // The codebook as read back from the file, laid out as latents [n, dim, 1 x s x s] where frame
  // b, position p holds row b * s * s + p.
  int64_t offset = 0;
  for (const VqganTensor& t : vqgan_tensors(c)) {
    if (t.name == "quantize.embedding.weight") break;
    offset += t.count();
  }
  const int64_t n = c.codebook_size, d = c.codebook_dim, per = c.codes_per_frame(), frames = n / per;
  REQUIRE(n % per == 0);
  std::vector<float> latents(static_cast<std::size_t>(n * d));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k)
      latents[static_cast<std::size_t>(((i / per) * d + k) * per + i % per)] = w.values[static_cast<std::size_t>(offset + i * d + k)];
  device::DeviceArray<float> z(*be, latents.size());
  device::DeviceArray<int32_t> codes(*be, static_cast<std::size_t>(n));
  z.upload(latents.data());
  model.quantize(z.data(), frames, codes.data(), nullptr);
  std::vector<int32_t> got(static_cast<std::size_t>(n));
  codes.download(got.data());
  for (int64_t i = 0; i < n; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("VQGAN import: LWM's flax stream gives the diffusers tensors", "[vqgan][vqgan_io]") {
  Scratch scratch("lwm");
  const VqganWeights w = import_fixture(kFixture, scratch);
  const VqganConfig c = w.config;
  // The stream: flax names, kernels [kh, kw, in, out] (transposed here from OIHW), float32.
  std::string stream;
  std::map<std::string, std::string> flax_of;
  for (const auto& [name, key] : lwm_vqgan_names(c)) flax_of[name] = key;
  int64_t offset = 0;
  for (const VqganTensor& t : vqgan_tensors(c)) {
    const float* v = w.values.data() + offset;
    offset += t.count();
    std::vector<float> data(v, v + t.count());
    std::vector<int64_t> shape = t.shape;
    if (t.shape.size() == 4) {
      const int64_t o = t.shape[0], i = t.shape[1], kh = t.shape[2], kw = t.shape[3];
      shape = {kh, kw, i, o};
      for (int64_t a = 0; a < o; ++a)
        for (int64_t b = 0; b < i; ++b)
          for (int64_t y = 0; y < kh; ++y)
            for (int64_t x = 0; x < kw; ++x) data[((y * kw + x) * i + b) * o + a] = v[((a * i + b) * kh + y) * kw + x];
    }
    stream += test::pack_jax_record(test::split_key(flax_of.at(t.name)), test::pack_jax_array(shape, "float32", test::f32_bytes(data)));
  }
  CHECK(flax_of.at("encoder.down_blocks.1.resnets.0.conv_shortcut.weight") ==
        "encoder/DownsamplingBlock_1/ResnetBlock_0/Conv_2/kernel");
  CHECK(flax_of.at("decoder.up_blocks.0.upsamplers.0.conv.bias") == "decoder/UpsamplingBlock_0/Upsample_0/Conv_0/bias");
  CHECK(flax_of.at("encoder.conv_norm_out.weight") == "encoder/GroupNorm_0/scale");
  const fs::path file = scratch.path / "vqgan";
  test::write_file(file.string(), stream);
  const auto src = open_lwm_vqgan(file.string(), c);
  offset = 0;
  for (const VqganTensor& t : vqgan_tensors(c)) {
    std::vector<float> got(static_cast<std::size_t>(t.count()));
    src->fetch(t, got.data());
    const std::vector<float> want(w.values.begin() + offset, w.values.begin() + offset + t.count());
    offset += t.count();
    INFO(t.name);
    CHECK(got == want);
  }

  // Bad LWM inputs.
  test::write_file((scratch.path / "pickle").string(), std::string("\x80\x04\x95", 3) + std::string(20, 'x'));
  CHECK_ERROR(open_lwm_vqgan((scratch.path / "pickle").string(), c), "pickle byte 2: a frame of");  // read as a pickle (test_pickle_reader.cpp)
  const std::string extra = test::pack_jax_record({"encoder", "AttnBlock_0", "Conv_0", "kernel"},
                                                  test::pack_jax_array({1}, "float32", test::f32_bytes({1.0f})));
  test::write_file((scratch.path / "extra").string(), stream + extra);
  CHECK_ERROR(open_lwm_vqgan((scratch.path / "extra").string(), c), "encoder/AttnBlock_0/Conv_0/kernel is not a parameter");
  VqganConfig wider = c;
  wider.latent_channels = 8;
  CHECK_ERROR(open_lwm_vqgan(file.string(), wider), "has shape [3, 3, 16, 4], the config implies [3, 3, 16, 8]");
  const std::string first = test::pack_jax_record(test::split_key(flax_of.at("encoder.conv_in.weight")),
                                                  test::pack_jax_array({3, 3, 3, 8}, "int32", std::string(3 * 3 * 3 * 8 * 4, '\0')));
  test::write_file((scratch.path / "int").string(), first + stream);
  CHECK_ERROR(open_lwm_vqgan((scratch.path / "int").string(), c), "appears twice");
}

TEST_CASE("VQGAN import: bad diffusers directories, weight files and images", "[vqgan][vqgan_io]") {
  Scratch scratch("bad");
  const test::StoredSafetensors good = test::read_safetensors_file((kFixture / "diffusion_pytorch_model.safetensors").string());
  // Rebuilds the weights with `edit` applied to (name, dtype, shape, bytes) of each tensor.
  auto rebuilt = [&](const std::string& name,
                     const std::function<bool(std::string&, std::string&, std::vector<int64_t>&, std::string&)>& edit,
                     const std::string& extra_name = "") {
    const fs::path dir = fixture_copy(scratch, name);
    test::SafetensorsBuilder b;
    for (const auto& [tensor, t] : good.tensors) {
      std::string n = tensor, dtype = t.dtype, bytes = t.bytes;
      std::vector<int64_t> shape = t.shape;
      if (edit(n, dtype, shape, bytes)) b.add(n, dtype, shape, bytes);
    }
    if (!extra_name.empty()) b.add(extra_name, "F32", {2}, test::f32_bytes({1, 2}));
    test::write_file((dir / "diffusion_pytorch_model.safetensors").string(), b.bytes());
    return dir.string();
  };
  auto keep = [](std::string&, std::string&, std::vector<int64_t>&, std::string&) { return true; };
  CHECK_ERROR(open_diffusers_vq(rebuilt("missing", [](std::string& n, std::string&, std::vector<int64_t>&, std::string&) {
                                  return n != "decoder.conv_out.bias";
                                }), 16),
              "tensor decoder.conv_out.bias is missing");
  CHECK_ERROR(open_diffusers_vq(rebuilt("extra", keep, "encoder.mid_block.attentions.0.to_q.bias"), 16),
              "tensor encoder.mid_block.attentions.0.to_q.bias is not part of");
  CHECK_ERROR(open_diffusers_vq(rebuilt("shape", [](std::string& n, std::string&, std::vector<int64_t>& s, std::string&) {
                                  if (n == "quant_conv.bias") s = {1, 3};
                                  return true;
                                }), 16),
              "tensor quant_conv.bias has shape [1, 3], the config implies [3]");
  CHECK_ERROR(open_diffusers_vq(rebuilt("dtype", [](std::string& n, std::string& d, std::vector<int64_t>&, std::string& b) {
                                  if (n == "quant_conv.bias") d = "I16";
                                  return true;
                                }), 16),
              "tensor quant_conv.bias has dtype I16");
  {  // config.json cases
    const fs::path dir = fixture_copy(scratch, "config");
    fs::copy_file(kFixture / "diffusion_pytorch_model.safetensors", dir / "diffusion_pytorch_model.safetensors");
    std::ifstream in(kFixture / "config.json");
    const nlohmann::json base = nlohmann::json::parse(in);
    auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
      nlohmann::json j = base;
      edit(j);
      test::write_file((dir / "config.json").string(), j.dump());
      return dir.string();
    };
    CHECK_ERROR(open_diffusers_vq(with([](nlohmann::json& j) { j.erase("mid_block_add_attention"); }), 16),
                "mid_block_add_attention must be false");
    CHECK_ERROR(open_diffusers_vq(with([](nlohmann::json& j) { j["up_block_types"][1] = "AttnUpDecoderBlock2D"; }), 16),
                "only UpDecoderBlock2D is supported");
    CHECK_ERROR(open_diffusers_vq(with([](nlohmann::json& j) { j["norm_num_groups"] = 3; }), 16), "norm_groups (3) must divide");
    CHECK_ERROR(open_diffusers_vq(with([](nlohmann::json& j) { j.erase("latent_channels"); }), 16), "latent_channels is missing");
    CHECK_ERROR(open_diffusers_vq(with([](nlohmann::json& j) { j["layers_per_block"] = 3; }), 16),
                "tensor encoder.down_blocks.0.resnets.2.norm1.weight is missing");
    CHECK_ERROR(open_diffusers_vq(with([](nlohmann::json&) {}), 10), "image_size (10) must be divisible by the downsampling factor 4");
  }
  CHECK_ERROR(open_diffusers_vq((scratch.path / "nowhere").string(), 16), "is not a directory");

  // Weight files.
  const fs::path not_vq = scratch.path / "not_vq.h5";
  {
    io::TensorH5Writer wr(not_vq.string());
    wr.attribute("format", std::string("something else"));
    wr.finish();
  }
  CHECK_ERROR(read_vqgan_weights(not_vq.string()), "is not a ringworld VQGAN weight file");
  test::write_file((scratch.path / "text.h5").string(), "not hdf5");
  CHECK_ERROR(read_vqgan_weights((scratch.path / "text.h5").string()), "cannot open");
  {
    const VqganConfig c = VqganConfig::preset("tiny-1");
    const std::string path = (scratch.path / "short.h5").string();
    write_vqgan_weights(path, c, "test", [](const VqganTensor& t, float* o) { std::fill(o, o + t.count(), 0.5f); });
    CHECK(read_vqgan_weights(path).values.size() == static_cast<std::size_t>(vqgan_parameter_counts(c).total()));
    {  // the same file with one tensor of another shape: copy every dataset but one
      const VqganConfig t = VqganConfig::preset("tiny-1");
      io::TensorH5Writer wr((scratch.path / "wrong.h5").string());
      const io::TensorH5Reader rd(path);
      wr.attribute("format", std::string("ringworld-vqgan"));
      for (const char* f : {"image_size", "in_channels", "out_channels", "base_channels", "encoder_res_blocks",
                            "decoder_res_blocks", "mid_res_blocks", "norm_groups", "latent_channels", "codebook_size",
                            "codebook_dim"})
        wr.attribute(f, rd.int_attribute(f));
      wr.attribute("channel_multipliers", rd.int_list_attribute("channel_multipliers"));
      wr.attribute("norm_eps", rd.real_attribute("norm_eps"));
      for (const VqganTensor& tensor : vqgan_tensors(t)) {
        std::vector<float> v(static_cast<std::size_t>(tensor.count()) + 1, 0.0f);
        std::vector<int64_t> shape = tensor.shape;
        if (tensor.name == "quant_conv.bias") shape = {tensor.count() + 1};
        wr.write_f32("/vqgan/" + tensor.name, shape, v.data());
      }
      wr.finish();
    }
    CHECK_ERROR(read_vqgan_weights((scratch.path / "wrong.h5").string()), "/vqgan/quant_conv.bias has shape [4], expected [3]");
  }

  // Images.
  test::write_file((scratch.path / "a.png").string(), "GIF89a....");
  CHECK_ERROR(io::read_image((scratch.path / "a.png").string()), "neither PNG nor JPEG");
  std::ifstream png_in(kFixture / "landscape.png", std::ios::binary);
  const std::string png((std::istreambuf_iterator<char>(png_in)), {});
  test::write_file((scratch.path / "cut.png").string(), png.substr(0, png.size() / 2));
  CHECK_ERROR(io::read_image((scratch.path / "cut.png").string()), "PNG");
  std::ifstream jpg_in(kFixture / "portrait.jpg", std::ios::binary);
  const std::string jpg((std::istreambuf_iterator<char>(jpg_in)), {});
  test::write_file((scratch.path / "cut.jpg").string(), jpg.substr(0, 40));
  CHECK_ERROR(io::read_image((scratch.path / "cut.jpg").string()), "not a readable JPEG");

  // Found by fuzz_image: a 625-byte JPEG whose header declares 32768 x 32768 pixels made the reader
  // allocate 3 GiB and decode padding for 20 s; a header's size is now bounded before any buffer is
  // sized, and a file that ends inside the image is refused (PIL: "image file is truncated").
  test::write_file((scratch.path / "tail.jpg").string(), jpg.substr(0, jpg.size() - 200));
  CHECK_ERROR(io::read_image((scratch.path / "tail.jpg").string()), "Premature end of JPEG file");
  std::string huge = jpg;
  const std::size_t sof = huge.find("\xFF\xC0");
  REQUIRE(sof != std::string::npos);
  for (const std::size_t at : {sof + 5, sof + 7}) huge.replace(at, 2, "\x23\x28");  // 9000 = 0x2328: 81M pixels
  test::write_file((scratch.path / "huge.jpg").string(), huge);
  CHECK_ERROR(io::read_image((scratch.path / "huge.jpg").string()), "9000 x 9000 pixels: at most 2^26");
  // A PNG's IHDR declaring 8000 x 8000 (64M pixels, inside the limits) in a 1430-byte file: deflate
  // cannot pack 8000 x 1001 bytes of rows into it; refused before the 256 MiB RGBA buffer is sized.
  std::string tall = png;
  const std::size_t ihdr = tall.find("IHDR");
  REQUIRE(ihdr != std::string::npos);
  tall.replace(ihdr + 4, 8, std::string("\x00\x00\x1F\x40\x00\x00\x1F\x40", 8));
  const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(tall.data() + ihdr), 17));
  for (int i = 0; i < 4; ++i) tall[ihdr + 17 + i] = static_cast<char>(crc >> (24 - 8 * i));
  test::write_file((scratch.path / "tall.png").string(), tall);
  CHECK_ERROR(io::read_image((scratch.path / "tall.png").string()), "cannot hold 8000 x 8000 pixels");
}
