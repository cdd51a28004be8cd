// bench_vqgan: speed of the CPU VQGAN kernels (device/cpu/vision_ops.h) against this machine's
// own OpenBLAS sgemm, measured in the same run on the same threads, and of the whole VQGAN
// (src/vision/vqgan_model.h) on one frame.
//
//   conv2d   one conv2d call (batch 1, NCHW) per row: the VQGAN's typical layers; GFLOP/s =
//            2 * MACs / median time; ratio = GFLOP/s / sgemm GFLOP/s (im2col + one GEMM per
//            row block: the ratio is what the copy and the GEMM's shape cost against a square GEMM);
//            gemm_ms = the kernel's GEMM work alone as one sgemm per row block on a ready column
//            matrix (the kernel splits each block into fixed tiles over OpenMP threads with a
//            single-threaded OpenBLAS, for bits independent of the thread count), so time /
//            gemm_ms is the im2col, bias and tiling overhead, whatever the load
//   model    encode (encoder + quant_conv), quantize (8192-code search), decode_codes
//            (post_quant_conv + decoder) of `--frames` frames on seeded random weights;
//            GMAC from the convolutions' weights and output sizes (the layout of vqgan_config.h)
// Serial program (no MPI). Usage: OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 bench_vqgan
//   [--threads N] [--reps 3] [--frames 1] [--image-size 256] [--no-model] [--quick]
// --quick: image size 64 and 1 rep (a smoke test of a few seconds).
#include <cblas.h>
#include <omp.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/cpu/vision_ops.h"
#include "perf/bench_common.h"
#include "src/common/timer.h"
#include "src/vision/vqgan_config.h"
#include "src/vision/vqgan_model.h"

namespace po = boost::program_options;
using namespace rw;

namespace {

struct ConvCase {
  const char* name;
  int64_t cin, cout, size, k;
  int stride, pad_top, pad_bottom;
};

// The GEMM-equivalent MACs of every convolution of one frame, split encoder (with quant_conv) /
// decoder (with post_quant_conv): weight elements x output pixels, the resolution read from
// the tensor's place in the architecture.
void conv_macs(const vision::VqganConfig& c, double* encoder, double* decoder) {
  *encoder = *decoder = 0;
  const int64_t S = c.image_size, s = c.latent_size();
  for (const vision::VqganTensor& t : vision::vqgan_tensors(c)) {
    if (t.shape.size() != 4) continue;
    const std::string& n = t.name;
    int64_t r = s;  // mid blocks, conv_out of the encoder, conv_in of the decoder, quant convs
    auto level = [&](const char* prefix) { return std::stoll(n.substr(std::string(prefix).size())); };
    if (n.rfind("encoder.conv_in", 0) == 0 || n.rfind("decoder.conv_out", 0) == 0) r = S;
    else if (n.rfind("encoder.down_blocks.", 0) == 0)
      r = (S >> level("encoder.down_blocks.")) / (n.find("downsamplers") != std::string::npos ? 2 : 1);
    else if (n.rfind("decoder.up_blocks.", 0) == 0)
      r = (s << level("decoder.up_blocks.")) * (n.find("upsamplers") != std::string::npos ? 2 : 1);
    const double macs = static_cast<double>(t.count()) * r * r;
    (n.rfind("encoder.", 0) == 0 || n.rfind("quant_conv", 0) == 0 ? *encoder : *decoder) += macs;
  }
}

double time_median(int reps, const std::function<void()>& fn) {
  std::vector<double> t;
  fn();  // warm-up
  for (int i = 0; i < reps; ++i) {
    const double start = wall_seconds();
    fn();
    t.push_back(wall_seconds() - start);
  }
  return perf::median(t);
}

}  // namespace

int main(int argc, char** argv) {
  device::prepare_process(argc, argv);
  int threads = 0, reps = 3, frames = 1;
  int64_t image_size = 256;
  po::options_description desc("bench_vqgan options");
  desc.add_options()("help", "this text")("threads", po::value<int>(&threads), "threads (default: OMP_NUM_THREADS)")(
      "reps", po::value<int>(&reps), "timed runs per case (median)")("frames", po::value<int>(&frames),
                                                                     "frames per model call")(
      "image-size", po::value<int64_t>(&image_size), "frame size (multiple of 16)")("no-model", "skip the model")(
      "quick", "image size 64, 1 rep");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "bench_vqgan: " << e.what() << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("quick")) image_size = 64, reps = 1;
  if (threads <= 0) threads = omp_get_max_threads();
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);

  auto backend = device::create_backend("cpu");
  device::Backend& be = *backend;
  device::Stream& st = be.default_stream();
  const perf::SgemmMeasurement peak = perf::measure_sgemm(threads);
  std::printf("# bench_vqgan: cpu backend, %d threads, %s\n", threads, perf::cpu_model_name().c_str());
  std::printf("# sgemm %.1f GFLOP/s (n %d, %d threads, median of %d)\n", peak.gflops, peak.n, peak.n_threads,
              peak.n_runs);

  const int64_t S = image_size;
  const std::vector<ConvCase> cases = {
      {"enc_l0_3x3", 128, 128, S, 3, 1, 1, 1},      {"down_l0_s2", 128, 128, S, 3, 2, 0, 1},
      {"shortcut_1x1", 128, 256, S / 2, 1, 1, 0, 0}, {"l2_3x3", 256, 256, S / 4, 3, 1, 1, 1},
      {"l3_3x3", 512, 512, S / 8, 3, 1, 1, 1},      {"l4_3x3", 768, 768, S / 16, 3, 1, 1, 1},
      {"dec_l0_in_3x3", 256, 128, S, 3, 1, 1, 1},
  };
  std::printf("%-14s %6s %6s %6s %3s %6s %10s %10s %8s %10s\n", "case", "cin", "cout", "size", "k", "stride", "time",
              "rate", "ratio", "gemm_only");
  std::printf("%-14s %6s %6s %6s %3s %6s %10s %10s %8s %10s\n", "-", "-", "-", "px", "-", "-", "ms", "GFLOP/s", "-",
              "ms");
  for (const ConvCase& c : cases) {
    const int64_t hout = (c.size + c.pad_top + c.pad_bottom - c.k) / c.stride + 1;
    device::DeviceArray<float> x(be, c.cin * c.size * c.size), w(be, c.cout * c.cin * c.k * c.k), b(be, c.cout),
        y(be, c.cout * hout * hout);
    perf::fill_uniform(be, x, 1);
    perf::fill_uniform(be, w, 2);
    perf::fill_uniform(be, b, 3);
    device::Conv2dArgs a;
    a.x = x.view({1, c.cin, c.size, c.size});
    a.weight = w.view({c.cout, c.cin, c.k, c.k});
    a.bias = b.view({c.cout});
    a.y = y.view({1, c.cout, hout, hout});
    a.stride = c.stride;
    a.pad_top = a.pad_left = c.pad_top;
    a.pad_bottom = a.pad_right = c.pad_bottom;
    const double t = time_median(reps, [&] {
      be.conv2d(a, st);
      be.synchronize(st);
    });
    const double gflops = 2.0 * c.cout * c.cin * c.k * c.k * hout * hout / t * 1e-9;
    // The kernel's GEMM work alone: its row blocks (vision_ops.cpp) as whole sgemm calls on a
    // ready column matrix (the kernel tiles them: see the header).
    const int64_t kk = c.cin * c.k * c.k;
    const int64_t rows = std::clamp<int64_t>(device::cpu::kConvColumnFloats / (kk * hout), 1, hout);
    const int64_t blocks = (hout + rows - 1) / rows, cols = rows * hout;
    std::vector<float> col(static_cast<std::size_t>(kk * cols), 0.5f), wh(static_cast<std::size_t>(c.cout * kk), 0.25f),
        yh(static_cast<std::size_t>(c.cout * hout * hout), 0.f);
    const double t_gemm = time_median(reps, [&] {
      for (int64_t blk = 0; blk < blocks; ++blk)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c.cout, (int)cols, (int)kk, 1.f, wh.data(), (int)kk,
                    col.data(), (int)cols, 1.f, yh.data() + std::min(blk * cols, hout * hout - cols), (int)(hout * hout));
    });
    std::printf("%-14s %6lld %6lld %6lld %3lld %6d %10.2f %10.1f %8.2f %10.2f\n", c.name, (long long)c.cin,
                (long long)c.cout, (long long)c.size, (long long)c.k, c.stride, t * 1e3, gflops, gflops / peak.gflops,
                t_gemm * 1e3);
  }
  if (vm.count("no-model")) return 0;

  vision::VqganConfig config = vision::VqganConfig::lwm();
  config.image_size = image_size;
  config.validate();
  double enc_macs = 0, dec_macs = 0;
  conv_macs(config, &enc_macs, &dec_macs);
  vision::VqganModel model(device::ExecContext::on_default_stream(be), config);
  {
    std::vector<float> weights(static_cast<std::size_t>(model.parameter_count()));
    uint64_t state = 99;
    for (float& v : weights) {  // small uniform values: the speed does not depend on them
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      v = static_cast<float>((state >> 40) * (1.0 / (1 << 24)) - 0.5) * 0.05f;
    }
    model.load_weights(weights);
  }
  const int64_t s = config.latent_size();
  device::DeviceArray<float> images(be, frames * 3 * S * S), z(be, frames * 64 * s * s), out(be, frames * 3 * S * S);
  device::DeviceArray<int32_t> codes(be, frames * s * s);
  perf::fill_uniform(be, images, 5);
  const double t_enc = time_median(reps, [&] {
    model.encode(images.data(), frames, z.data());
    be.synchronize(st);
  });
  const double t_q = time_median(reps, [&] {
    model.quantize(z.data(), frames, codes.data(), nullptr);
    be.synchronize(st);
  });
  const double t_dec = time_median(reps, [&] {
    model.decode_codes(codes.data(), frames, out.data());
    be.synchronize(st);
  });
  std::printf("# model: %s; %d frame(s) per call; workspace %.0f MiB per frame x 4\n", config.describe().c_str(), frames,
              config.max_activation_floats() * 4.0 / (1 << 20));
  std::printf("%-14s %10s %10s %10s %8s\n", "pass", "GMAC", "time", "rate", "ratio");
  std::printf("%-14s %10s %10s %10s %8s\n", "-", "per_frame", "s_per_frame", "GFLOP/s", "-");
  auto row = [&](const char* name, double macs, double t) {
    const double gflops = t > 0 && macs > 0 ? 2.0 * macs * frames / t * 1e-9 : 0;
    std::printf("%-14s %10.1f %10.3f %10.1f %8.2f\n", name, macs * 1e-9, t / frames, gflops, gflops / peak.gflops);
  };
  row("encode", enc_macs, t_enc);
  row("quantize", static_cast<double>(config.codes_per_frame()) * config.codebook_size * config.codebook_dim, t_q);
  row("decode_codes", dec_macs, t_dec);
  return 0;
}
