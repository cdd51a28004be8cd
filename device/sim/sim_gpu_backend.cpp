// sim_gpu_backend.cpp: see sim_gpu_backend.h.
#include "device/sim/sim_gpu_backend.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "device/cpu/sgemm_peak.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::device {
namespace {

long env_long(const char* name, long fallback, long min_value, long max_value) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < min_value || value > max_value)
    throw InputError(std::string("environment variable ") + name + "='" + text + "': expected an integer in [" +
                     std::to_string(min_value) + ", " + std::to_string(max_value) + "]");
  return value;
}

class SimEvent : public Event {
 public:
  explicit SimEvent(const Backend& owner) : Event(owner) {}
  std::shared_ptr<sim::StreamProgress> progress;  // null: never recorded (complete)
  uint64_t ticket = 0;
};

Capabilities sim_capabilities() {
  Capabilities c;
  c.async_execution = true;
  c.events = true;
  c.host_accessible_device_memory = false;
  c.gpu_aware_mpi_possible = false;  // MPI traffic is staged through pinned host buffers
  c.pinned_host_memory = true;
  c.bf16_storage = true;  // by conversion, as the cpu backend
  c.bf16_native = false;
  c.kernels_call_progress_hook = false;  // kernels run on workers; the host calls the hook while it waits
  c.allocation_alignment_bytes = 4096;
  c.attn_tiling = AttnTiling{};  // the cpu kernels run underneath
  c.vqgan_kernels = true;  // the cpu kernels, or the GPU kernels' emulation (options.run_kernel: cuda-emu, hip-emu)
  return c;
}

bool overlaps(const char* a, std::size_t na, const char* b, std::size_t nb) { return a < b + nb && b < a + na; }

}  // namespace

SimGpuOptions SimGpuOptions::from_environment() {
  SimGpuOptions o;
  o.max_delay_us = static_cast<int>(env_long("RINGWORLD_SIM_GPU_DELAY_US", 0, 0, 1000000));
  o.seed = static_cast<uint64_t>(env_long("RINGWORLD_SIM_GPU_SEED", 1, 0, 1L << 62));
  o.address_space_bytes = static_cast<std::size_t>(env_long("RINGWORLD_SIM_GPU_ADDRESS_SPACE_GB", 64, 1, 1 << 16))
                          << 30;
  return o;
}

// A SimStream that the backend knows about while it lives (synchronize_all waits for it).
class SimGpuBackend::TrackedStream : public sim::SimStream {
 public:
  TrackedStream(SimGpuBackend& backend, int id)
      : SimStream(backend, id, backend.options_.max_delay_us, backend.options_.seed), backend_(backend) {
    std::lock_guard<std::mutex> lock(backend_.streams_mutex_);
    backend_.streams_.insert(this);
  }
  ~TrackedStream() override {
    std::lock_guard<std::mutex> lock(backend_.streams_mutex_);
    backend_.streams_.erase(this);
  }

 private:
  SimGpuBackend& backend_;
};

SimGpuBackend::SimGpuBackend(const SimGpuOptions& options)
    : options_(options), capabilities_(sim_capabilities()), memory_(options.address_space_bytes) {
  default_stream_ = std::make_unique<TrackedStream>(*this, next_stream_id_++);
}

SimGpuBackend::~SimGpuBackend() {
  synchronize_all_impl({});
  default_stream_.reset();
  std::lock_guard<std::mutex> lock(streams_mutex_);
  RW_CHECK(streams_.empty(), "sim-gpu: " + std::to_string(streams_.size()) +
                                 " stream(s) outlive their backend (destroy streams before the backend)");
  for (void* p : host_allocations_) std::free(p);
}

std::string SimGpuBackend::resources_line() const {
  const std::string delays =
      options_.max_delay_us > 0 ? "random delays up to " + std::to_string(options_.max_delay_us) + " us" : "";
  if (!options_.kernels_description.empty())
    return options_.name + ": one worker thread per stream runs " + options_.kernels_description +
           (delays.empty() ? "" : " (" + delays + ")");
  return options_.name + ": one worker thread per stream runs the cpu kernels (" + (delays.empty() ? "" : delays + "; ") +
         cpu::thread_counts_line(omp_get_max_threads()) + ")";
}

std::string SimGpuBackend::configuration_warning() const {
  if (!options_.kernels_description.empty()) return "";  // not the cpu kernels: their thread counts do not apply
  return cpu::thread_mismatch_warning(omp_get_max_threads());
}

SimGpuBackend::Stats SimGpuBackend::stats() const {
  Stats s;
  s.operations = operations_;
  s.release_waits = memory_.release_waits();
  s.live_device_bytes = memory_.live_device_bytes();
  return s;
}

sim::SimStream& SimGpuBackend::sim_stream(Stream& stream) { return static_cast<sim::SimStream&>(stream); }

uint64_t SimGpuBackend::enqueue(sim::SimStream& stream, std::function<void()> op) {
  ++operations_;
  return stream.enqueue(std::move(op));
}

sim::SimMemory::Range SimGpuBackend::resolve_device(const void* p, std::size_t n_bytes, const char* op,
                                                    const char* arg) {
  sim::SimMemory::Range range;
  std::string why;
  if (!memory_.resolve_device(p, n_bytes, &range, &why))
    RW_FAIL(std::string("sim-gpu: ") + op + ", argument '" + arg + "': " + why);
  return range;
}

// ---- streams and events ----

std::unique_ptr<Stream> SimGpuBackend::create_stream_impl() {
  return std::make_unique<TrackedStream>(*this, next_stream_id_++);
}

std::unique_ptr<Event> SimGpuBackend::create_event_impl() { return std::make_unique<SimEvent>(*this); }

void SimGpuBackend::record_impl(Event& event, Stream& stream) {
  auto& e = static_cast<SimEvent&>(event);
  sim::SimStream& s = sim_stream(stream);
  e.progress = s.progress();
  e.ticket = s.enqueued();
}

void SimGpuBackend::wait_impl(Stream& stream, Event& event) {
  auto& e = static_cast<SimEvent&>(event);
  if (!e.progress) return;  // never recorded: nothing to wait for
  enqueue(sim_stream(stream), [progress = e.progress, ticket = e.ticket] { progress->wait_for(ticket); });
}

bool SimGpuBackend::query_impl(Event& event) {
  auto& e = static_cast<SimEvent&>(event);
  return !e.progress || e.progress->is_complete(e.ticket);
}

void SimGpuBackend::host_wait_impl(Event& event, const ProgressHook& hook) {
  auto& e = static_cast<SimEvent&>(event);
  if (!e.progress) return hook();
  e.progress->host_wait(e.ticket, hook);
}

void SimGpuBackend::synchronize_impl(Stream& stream, const ProgressHook& hook) {
  sim::SimStream& s = sim_stream(stream);
  s.progress()->host_wait(s.enqueued(), hook);
}

void SimGpuBackend::synchronize_all_impl(const ProgressHook& hook) {
  std::vector<sim::SimStream*> streams;
  {
    std::lock_guard<std::mutex> lock(streams_mutex_);
    streams.assign(streams_.begin(), streams_.end());
  }
  for (sim::SimStream* s : streams) s->progress()->host_wait(s->enqueued(), hook);
  if (streams.empty()) hook();
}

struct SimGpuBackend::GateState {
  std::mutex mutex;
  std::condition_variable opened;
  bool open = false;
};

void SimGpuBackend::Gate::open() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->open = true;
  }
  state_->opened.notify_all();
}

std::unique_ptr<SimGpuBackend::Gate> SimGpuBackend::hold(Stream& stream) {
  RW_CHECK(&stream.owner() == this, "sim-gpu: hold: the stream belongs to another backend");
  auto state = std::make_shared<GateState>();
  enqueue(sim_stream(stream), [state] {
    std::unique_lock<std::mutex> lock(state->mutex);
    state->opened.wait(lock, [&] { return state->open; });
  });
  return std::make_unique<Gate>(state);
}

// ---- memory ----

void* SimGpuBackend::allocate_impl(std::size_t n_bytes, MemoryKind kind) {
  switch (kind) {
    case MemoryKind::device: return memory_.allocate_device(n_bytes);
    case MemoryKind::pinned_host: return memory_.allocate_pinned(n_bytes);
    case MemoryKind::host: {
      void* p = std::aligned_alloc(64, n_bytes == 0 ? 64 : ((n_bytes + 63) / 64) * 64);
      if (p) host_allocations_.insert(p);
      return p;
    }
  }
  return nullptr;
}

void SimGpuBackend::release_impl(void* pointer) {
  auto it = host_allocations_.find(pointer);
  if (it != host_allocations_.end()) {
    host_allocations_.erase(it);
    std::free(pointer);
    return;
  }
  memory_.release(pointer);
}

void SimGpuBackend::copy_async_impl(void* dst, const void* src, std::size_t n_bytes, Stream& stream) {
  auto classify = [&](const void* p, const char* arg) {
    if (memory_.in_device_range(p)) return resolve_device(p, n_bytes, "copy_async", arg);
    sim::SimMemory::Range range;
    std::string why;
    if (!memory_.resolve_pinned(p, n_bytes, &range, &why))
      RW_FAIL(std::string("sim-gpu: copy_async, argument '") + arg + "': " + why);
    return range;
  };
  const sim::SimMemory::Range to = classify(dst, "dst"), from = classify(src, "src");
  memory_.add_use(to.block);
  memory_.add_use(from.block);
  enqueue(sim_stream(stream), [this, to, from, n_bytes] {
    std::memmove(to.storage(), from.storage(), n_bytes);
    memory_.drop_use(to.block);
    memory_.drop_use(from.block);
  });
}

void SimGpuBackend::copy_sync_impl(void* dst, const void* src, std::size_t n_bytes, CopyDirection direction) {
  // Every stream is idle here (Backend synchronised them all).
  switch (direction) {
    case CopyDirection::host_to_device: {
      RW_CHECK(!memory_.in_device_range(src),
               "sim-gpu: copy_to_device, argument 'src' is sim-gpu device memory (use copy_device_to_device)");
      std::memcpy(resolve_device(dst, n_bytes, "copy_to_device", "dst").storage(), src, n_bytes);
      break;
    }
    case CopyDirection::device_to_host: {
      RW_CHECK(!memory_.in_device_range(dst),
               "sim-gpu: copy_to_host, argument 'dst' is sim-gpu device memory (use copy_device_to_device)");
      std::memcpy(dst, resolve_device(src, n_bytes, "copy_to_host", "src").storage(), n_bytes);
      break;
    }
    case CopyDirection::device_to_device: {
      char* to = resolve_device(dst, n_bytes, "copy_device_to_device", "dst").storage();
      const char* from = resolve_device(src, n_bytes, "copy_device_to_device", "src").storage();
      std::memmove(to, from, n_bytes);
      break;
    }
  }
}

// ---- kernels ----

void SimGpuBackend::submit(KernelCall& call, const ProgressHook&, Stream& stream) {
  struct Arg {
    sim::SimMemory::Range range;
    std::size_t n_bytes;
    Access access;
  };
  const char* kernel = kernel_name(call);
  std::vector<Arg> args;
  for_each_buffer(call, [&](const char* name, auto& pointer, std::size_t n_bytes, Access access) {
    args.push_back({resolve_device(pointer, n_bytes, (std::string("kernel ") + kernel).c_str(), name), n_bytes,
                    access});
  });
  // Write-only outputs are poisoned before the kernel runs, unless they overlap another
  // argument (an in-place use) or are strided (GEMM's C may sit inside a larger matrix).
  std::vector<char> poison(args.size(), 0);
  if (!std::holds_alternative<GemmArgs>(call))
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (args[i].access != Access::write) continue;
      bool alone = true;
      for (std::size_t j = 0; j < args.size(); ++j)
        if (j != i && overlaps(args[i].range.storage(), args[i].n_bytes, args[j].range.storage(), args[j].n_bytes))
          alone = false;
      poison[i] = alone;
    }
  for (const Arg& a : args) memory_.add_use(a.range.block);
  const cpu::KernelConfig config{options_.fwd_kernel, false};
  enqueue(sim_stream(stream), [this, call, args = std::move(args), poison = std::move(poison), config]() mutable {
    std::size_t i = 0;
    for_each_buffer(call, [&](const char*, auto& pointer, std::size_t, Access) {
      using Pointer = std::remove_reference_t<decltype(pointer)>;
      pointer = static_cast<Pointer>(static_cast<void*>(args[i++].range.storage()));
    });
    for (std::size_t j = 0; j < args.size(); ++j)
      if (poison[j]) sim::fill_poison(args[j].range.storage(), args[j].n_bytes);
    if (options_.run_kernel) options_.run_kernel(call);
    else cpu::run_kernel(call, ProgressHook{}, config);
    for (const Arg& a : args) memory_.drop_use(a.range.block);
  });
}

}  // namespace rw::device
