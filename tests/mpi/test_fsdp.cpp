// test_fsdp.cpp: FSDP shards in device memory (src/train/fsdp_params.h) on every execution
// setting: cpu with MPI on the device buffers (direct), cpu staged through pinned buffers, and
// sim-gpu (staged; kernels and copies late, on worker threads, after random delays), each with a
// compute stream of its own, and with collectives split into pieces (tiny chunks). Checked
// against values known exactly: gathered units equal param_init's values bit for bit; reduce-
// scattered gradients are sums of small integers (exact in fp32). Also: prefetched all-gathers
// are in flight before gather(), the buffers are kept (sim-gpu allocates nothing after the first
// step and never frees under pending work), the global gradient norm on the device equals the
// host loop bit for bit, and checkpoints and parameter files carry device shards bit for bit
// across backends and grids. Run under mpirun with 1-4 ranks; a few seconds.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/sim/sim_gpu_backend.h"
#include "io/checkpoint.h"
#include "io/params_io.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "src/model/param_init.h"
#include "src/train/fsdp_params.h"
#include "src/train/grad_norm.h"
#include "tests/test_support.h"

using namespace rw;

namespace {

struct Setting {
  const char* backend;
  mpi::PathChoice path;
};
const Setting kSettings[] = {{"cpu", mpi::PathChoice::automatic},
                             {"cpu", mpi::PathChoice::staged},
                             {"sim-gpu", mpi::PathChoice::automatic}};

std::unique_ptr<device::Backend> make_test_backend(const std::string& name) {
  if (name != "sim-gpu") return device::create_backend(name);
  device::SimGpuOptions o = device::SimGpuOptions::from_environment();
  if (o.max_delay_us == 0) o.max_delay_us = 100;
  o.seed = 11 + static_cast<uint64_t>(mpi::world_rank());
  return std::make_unique<device::SimGpuBackend>(o);
}

// A backend, a compute stream of its own, and FSDP parameters on them.
struct Fixture {
  std::unique_ptr<device::Backend> backend;
  std::unique_ptr<device::Stream> compute;
  std::unique_ptr<train::FsdpParams> params;
  Fixture(const model::LlamaConfig& config, mpi::ProcessGrid& grid, const Setting& s, int gather_buffers = 2) {
    backend = make_test_backend(s.backend);
    compute = backend->create_stream();
    train::FsdpOptions o;
    o.transfer_path = s.path;
    o.gather_buffers = gather_buffers;
    params = std::make_unique<train::FsdpParams>(config, grid, device::ExecContext{backend.get(), compute.get()}, o);
  }
  ~Fixture() {
    params.reset();
    compute.reset();
  }
};

model::LlamaConfig test_config() { return test::tiny_llama(61, 16, 24, 3, 4, 2, 10000.0); }

// Unit u's gathered values as the host sees them (download waits for every stream).
std::vector<float> download(device::Backend& b, const float* device_data, std::size_t count) {
  std::vector<float> h(count);
  b.copy_to_host(h.data(), device_data, count * sizeof(float));
  return h;
}

// Whether a gathered unit holds param_init's values for seed, and zero padding.
bool gathered_right(Fixture& f, int unit, const float* full, uint64_t seed) {
  const auto& spec = f.params->units()[unit];
  const auto& sh = static_cast<const train::FsdpParams&>(*f.params).shards()[unit];  // (non-const settles)
  const std::size_t padded = static_cast<std::size_t>(sh.shard_count) * f.params->grid().size();
  const std::vector<float> got = download(*f.backend, full, padded);
  for (std::size_t i = 0; i < padded; ++i) {
    const float want = static_cast<int64_t>(i) < spec.count ? model::initial_value(seed, unit, spec, i) : 0.f;
    if (std::memcmp(&got[i], &want, sizeof want) != 0) return false;
  }
  return true;
}

// Rank r's gradient contribution to element i of unit u: (r + 1) * (u * 100 + i % 97), so the
// sum over n ranks is n (n + 1) / 2 * (u * 100 + i % 97): small integers, exact in fp32.
float contribution(int rank, int unit, int64_t i) { return static_cast<float>((rank + 1) * (unit * 100 + i % 97)); }

std::string shared_scratch_path(const char* stem) {
  double pid = mpi::world_rank() == 0 ? static_cast<double>(getpid()) : 0.0;
  pid = mpi::allreduce_max(pid);
  return std::string(stem) + "-" + std::to_string(static_cast<long>(pid)) + ".h5";
}

std::vector<float> owned_field(train::FsdpParams& p, io::ShardField field) {
  std::vector<float> out;
  for (std::size_t u = 0; u < p.units().size(); ++u) {
    const auto& sh = static_cast<const train::FsdpParams&>(p).shards()[u];
    std::vector<float> h(static_cast<std::size_t>(sh.shard_count));
    p.download_shard(static_cast<int>(u), field, h.data());
    out.insert(out.end(), h.begin(), h.begin() + (sh.end - sh.begin));
  }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// One model-like pass: forward gathers 0..L+1 in order with prefetch of the next; backward in
// reverse with reduce_grad after each, the gradient buffer overwritten right after (allowed:
// reduce_grad reads it in compute-stream order).
void model_like_step(Fixture& f, uint64_t seed, device::DeviceArray<float>& grad, device::DeviceArray<float>& staging,
                     bool* all_right) {
  train::FsdpParams& p = *f.params;
  device::Backend& b = *f.backend;
  const int units = static_cast<int>(p.units().size());
  const int me = p.grid().rank();
  for (int u = 0; u < units; ++u) {
    const float* w = p.gather(u);
    if (u + 1 < units) p.prefetch(u + 1);
    *all_right = *all_right && gathered_right(f, u, w, seed);
    p.release(u);
  }
  for (int u = units - 1; u >= 0; --u) {
    const float* w = p.gather(u);
    if (u > 0) p.prefetch(u - 1);
    *all_right = *all_right && gathered_right(f, u, w, seed);
    const int64_t count = p.units()[u].count;
    std::vector<float> g(static_cast<std::size_t>(count));
    for (int64_t i = 0; i < count; ++i) g[i] = contribution(me, u, i);
    // The gradient "kernel": a stream-ordered copy on the compute stream (from a device array
    // uploaded synchronously).
    b.copy_to_device(staging.data(), g.data(), g.size() * sizeof(float));  // (waits for every stream)
    b.copy_async(grad.data(), staging.data(), g.size() * sizeof(float), *f.compute);
    p.reduce_grad(u, grad.data());
    // Overwrite the gradient buffer at once (the next layer's gradient would).
    b.fill(device::FillArgs{device::view(grad.data(), {count}), -12345.0}, *f.compute);
    p.release(u);
  }
}

}  // namespace

TEST_CASE("FSDP gathers and reduce-scatters device shards on every setting", "[fsdp]") {
  const int n = mpi::world_size();
  const model::LlamaConfig config = test_config();
  for (const Setting& s : kSettings)
    for (std::size_t chunk : {std::size_t(0), std::size_t(52)}) {
      INFO("backend " << s.backend << ", path " << static_cast<int>(s.path) << ", chunk " << chunk << " bytes, "
                      << n << " ranks");
      mpi::ProcessGrid grid(1, n, 60.0);
      if (chunk > 0) grid.set_chunk_bytes(chunk);  // every collective in many pieces
      Fixture f(config, grid, s);
      const uint64_t seed = 5;
      f.params->initialize(seed);
      f.params->zero_grads();
      int64_t largest = 0;
      for (const auto& u : f.params->units()) largest = std::max(largest, u.count);
      device::DeviceArray<float> grad(*f.backend, static_cast<std::size_t>(largest));
      std::vector<float> zeros(static_cast<std::size_t>(largest), 0.f);
      device::DeviceArray<float> staging(*f.backend, zeros.size());
      staging.upload(zeros.data());
      bool right = true;
      model_like_step(f, seed, grad, staging, &right);
      CHECK(right);
      // Odd orders: prefetch out of order and twice, hold two units at once, gather a unit
      // never prefetched.
      f.params->prefetch(2);
      f.params->prefetch(0);
      f.params->prefetch(2);
      const float* a = f.params->gather(0);
      const float* c = f.params->gather(2);
      const float* d = f.params->gather(3);  // a third buffer: gather adds one
      CHECK(gathered_right(f, 0, a, seed));
      CHECK(gathered_right(f, 2, c, seed));
      CHECK(gathered_right(f, 3, d, seed));
      f.params->release(2);
      f.params->release(0);
      f.params->release(3);
      // The gradients: two contributions (forward-backward above, and one more below) summed.
      const int me = grid.rank();
      for (int u = 0; u < static_cast<int>(f.params->units().size()); ++u) {
        const int64_t count = f.params->units()[u].count;
        std::vector<float> g(static_cast<std::size_t>(count));
        for (int64_t i = 0; i < count; ++i) g[i] = contribution(me, u, i);
        // (synchronous: the previous reduce_grad's copy has read it)
        f.backend->copy_to_device(grad.data(), g.data(), g.size() * sizeof(float));
        f.params->reduce_grad(u, grad.data());
      }
      f.params->finish_grad_reductions();
      std::size_t wrong = 0;
      for (std::size_t u = 0; u < f.params->units().size(); ++u) {
        const auto& sh = static_cast<const train::FsdpParams&>(*f.params).shards()[u];
        std::vector<float> h(static_cast<std::size_t>(sh.shard_count));
        f.params->download_shard(static_cast<int>(u), io::ShardField::grads, h.data());
        for (int64_t i = 0; i < sh.shard_count; ++i) {
          const int64_t global = sh.begin + i;
          const float want = global < sh.end ? 2.f * n * (n + 1) / 2 * static_cast<float>(u * 100 + global % 97) : 0.f;
          wrong += h[i] != want;
        }
      }
      CHECK(wrong == 0);
      const auto st = f.params->stats();
      const int units = static_cast<int>(f.params->units().size());
      // Forward: every unit but the first was prefetched; backward: the last unit is served from
      // its buffer (gathered last in the forward), every other one was prefetched.
      CHECK(st.gathers_prefetched >= 2 * (units - 1) - 1);
      CHECK(st.gathers_cached >= 1);
      CHECK(f.params->transfer_path() == (std::string(s.backend) == "sim-gpu" || s.path == mpi::PathChoice::staged
                                              ? mpi::TransferPath::staged
                                              : mpi::TransferPath::direct));
    }
}

// bf16 working copy (FsdpOptions::gather_dtype bf16, the model's --precision bf16): every
// gathered unit is bit for bit the fp32 master rounded to bf16 (nearest even, dtype.h), padding
// zero, on every setting and split into pieces (odd 2-byte pieces: chunk 26 bytes); after the
// weights change through shards() the next gather moves the refreshed copy.
TEST_CASE("FSDP's bf16 gather is the rounded fp32 master, refreshed after an update", "[fsdp][bf16]") {
  const int n = mpi::world_size();
  const model::LlamaConfig config = test_config();
  for (const Setting& s : kSettings)
    for (std::size_t chunk : {std::size_t(0), std::size_t(26)}) {
      INFO("backend " << s.backend << ", path " << static_cast<int>(s.path) << ", chunk " << chunk << " bytes, "
                      << n << " ranks");
      mpi::ProcessGrid grid(1, n, 60.0);
      if (chunk > 0) grid.set_chunk_bytes(chunk);
      auto backend = make_test_backend(s.backend);
      auto compute = backend->create_stream();
      train::FsdpOptions o;
      o.transfer_path = s.path;
      o.gather_dtype = device::DType::bf16;
      auto params = std::make_unique<train::FsdpParams>(config, grid, device::ExecContext{backend.get(), compute.get()}, o);
      REQUIRE(params->gathers_bf16());
      const uint64_t seed = 5;
      params->initialize(seed);
      for (float changed : {0.f, 0.3f}) {
        INFO((changed == 0.f ? "initial weights" : "after an update"));
        if (changed != 0.f)
          for (auto& sh : params->shards())  // (non-const: the weights change)
            backend->fill(device::FillArgs{device::view(sh.weights.data(), {sh.shard_count}), changed}, *compute);
        std::size_t wrong = 0;
        for (int u = 0; u < static_cast<int>(params->units().size()); ++u) {
          const device::bf16_t* full = params->gather_bf16(u);
          if (u + 1 < static_cast<int>(params->units().size())) params->prefetch(u + 1);
          const auto& spec = params->units()[u];
          const int64_t padded = static_cast<const train::FsdpParams&>(*params).shards()[u].shard_count * n;
          std::vector<device::bf16_t> got(static_cast<std::size_t>(padded));
          backend->copy_to_host(got.data(), full, got.size() * sizeof(device::bf16_t));
          for (int64_t i = 0; i < padded; ++i) {
            const float master = changed != 0.f ? changed
                                 : i < spec.count ? model::initial_value(seed, u, spec, i)
                                                  : 0.f;
            wrong += got[i].bits != device::bf16_from_float(master).bits;
          }
          params->release(u);
        }
        CHECK(wrong == 0);
      }
      params.reset();
      compute.reset();
    }
}

TEST_CASE("FSDP keeps its buffers: sim-gpu allocates nothing after the first step", "[fsdp][sim]") {
  const model::LlamaConfig config = test_config();
  mpi::ProcessGrid grid(1, mpi::world_size(), 60.0);
  Fixture f(config, grid, kSettings[2]);
  auto& sim = dynamic_cast<device::SimGpuBackend&>(*f.backend);
  f.params->initialize(3);
  int64_t largest = 0;
  for (const auto& u : f.params->units()) largest = std::max(largest, u.count);
  device::DeviceArray<float> grad(*f.backend, static_cast<std::size_t>(largest)),
      staging(*f.backend, static_cast<std::size_t>(largest));
  std::size_t workspace = 0, live = 0;
  bool right = true;
  for (int step = 0; step < 3; ++step) {
    f.params->zero_grads();
    model_like_step(f, 3, grad, staging, &right);
    f.params->finish_grad_reductions();
    f.params->shards();  // the optimizer's access: weights change, buffers stay
    if (step == 0) {
      workspace = f.params->workspace_bytes();
      live = sim.stats().live_device_bytes;
    }
  }
  CHECK(right);
  CHECK(f.params->workspace_bytes() == workspace);
  CHECK(sim.stats().live_device_bytes == live);
  CHECK(sim.stats().release_waits == 0);
}

TEST_CASE("the global gradient norm on the device equals the host loop bit for bit", "[fsdp]") {
  const model::LlamaConfig config = test_config();
  for (const Setting& s : kSettings) {
    INFO("backend " << s.backend);
    mpi::ProcessGrid grid(1, mpi::world_size(), 60.0);
    Fixture f(config, grid, s);
    test::Rng rng(99 + grid.rank());
    double host = 0;  // the loop the kernel replaces: owned elements, shard order, fp64
    for (std::size_t u = 0; u < f.params->units().size(); ++u) {
      const auto& sh = static_cast<const train::FsdpParams&>(*f.params).shards()[u];
      std::vector<float> g(static_cast<std::size_t>(sh.shard_count), 0.f);
      for (int64_t i = 0; i < sh.end - sh.begin; ++i) g[i] = rng.symmetric(3.f);
      for (int64_t i = 0; i < sh.end - sh.begin; ++i) host += double(g[i]) * double(g[i]);
      f.params->upload_shard(static_cast<int>(u), io::ShardField::grads, g.data());
    }
    const double want = std::sqrt(grid.allreduce_sum(host));
    const double got = train::global_grad_norm(*f.params);
    CHECK(std::memcmp(&got, &want, sizeof got) == 0);
  }
}

TEST_CASE("checkpoints and parameter files carry device shards bit for bit across backends", "[fsdp][ckpt]") {
  // A text model, and a vision model (LWM's dual vocabulary: embed_vision and vision_head in the
  // embedding and head units, their own tensors in the files).
  model::LlamaConfig vision = test_config();
  vision.vision_vocab_size = 9;
  const model::LlamaConfig config = GENERATE_COPY(test_config(), vision);
  INFO("vision_vocab_size " << config.vision_vocab_size);
  const int n = mpi::world_size();
  const std::string ckpt = shared_scratch_path("fsdp-ckpt-test"), params_file = shared_scratch_path("fsdp-params-test");
  mpi::ProcessGrid grid(1, n, 60.0);
  io::CheckpointState state;
  state.step = 7;
  state.seq_len = 64;
  state.layout = "zigzag";
  state.world_size = n;
  state.dp = 1;
  state.sp = n;
  // Written from sim-gpu: weights from param_init, moments and grads random.
  std::vector<float> w, m, v, g;
  {
    Fixture f(config, grid, kSettings[2]);
    f.params->initialize(17);
    test::Rng rng(1000 + grid.rank());
    for (std::size_t u = 0; u < f.params->units().size(); ++u) {
      const auto& sh = static_cast<const train::FsdpParams&>(*f.params).shards()[u];
      for (io::ShardField field : {io::ShardField::adam_m, io::ShardField::adam_v, io::ShardField::grads}) {
        std::vector<float> h(static_cast<std::size_t>(sh.shard_count), 0.f);
        for (int64_t i = 0; i < sh.end - sh.begin; ++i) h[i] = rng.symmetric(1.f);
        f.params->upload_shard(static_cast<int>(u), field, h.data());
      }
    }
    io::save_checkpoint(ckpt, config, *f.params, state);
    io::write_sharded_tensors(params_file, config, *f.params, {{"/params", io::TensorGroup::Source::weights}});
    w = owned_field(*f.params, io::ShardField::weights);
    m = owned_field(*f.params, io::ShardField::adam_m);
    v = owned_field(*f.params, io::ShardField::adam_v);
  }
  for (const Setting& s : kSettings) {
    INFO("read back on " << s.backend);
    Fixture f(config, grid, s);
    io::load_checkpoint(ckpt, *f.params, true);
    CHECK(same_bits(owned_field(*f.params, io::ShardField::weights), w));
    CHECK(same_bits(owned_field(*f.params, io::ShardField::adam_m), m));
    CHECK(same_bits(owned_field(*f.params, io::ShardField::adam_v), v));
    // Without the optimizer the moments are zero; the weights as saved.
    io::load_checkpoint(ckpt, *f.params, false);
    CHECK(same_bits(owned_field(*f.params, io::ShardField::adam_m), std::vector<float>(m.size(), 0.f)));
    Fixture g2(config, grid, s);
    io::read_param_shards(params_file, *g2.params);
    CHECK(same_bits(owned_field(*g2.params, io::ShardField::weights), w));
    // And the gathered unit is the loaded one (the load invalidates nothing stale).
    const float* full = g2.params->gather(1);
    CHECK(gathered_right(g2, 1, full, 17));
    g2.params->release(1);
  }
  // Another grid reads the same file: 1 x n and, on 2+ ranks, n x 1 hold different ranges.
  if (n > 1) {
    mpi::ProcessGrid other(n, 1, 60.0);
    Fixture f(config, other, kSettings[2]);
    io::read_param_shards(params_file, *f.params);
    const float* full = f.params->gather(0);
    CHECK(gathered_right(f, 0, full, 17));
    f.params->release(0);
    const int head = static_cast<int>(f.params->units().size()) - 1;  // norm, lm_head (, vision_head)
    full = f.params->gather(head);
    CHECK(gathered_right(f, head, full, 17));
    f.params->release(head);
  }
  mpi::barrier();
  if (grid.rank() == 0) {
    std::remove(ckpt.c_str());
    std::remove(params_file.c_str());
  }
}
