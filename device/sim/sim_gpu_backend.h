// sim_gpu_backend.h: sim-gpu, a CPU backend that behaves like a discrete GPU, strict rather than
// fast. It exists to catch on a machine without a GPU every ordering and residency bug a GPU
// would show:
//   - device memory the host cannot touch (sim_memory.h): a host dereference of a device
//     pointer faults (SIGSEGV); a kernel or copy argument that is not inside a live device
//     allocation, or runs past its end, is fatal at submission, naming the kernel and argument;
//   - kernels and copies run later, asynchronously, on one worker thread per stream, in stream
//     order (sim_stream.h); only events order streams; an optional random delay before every
//     operation (RINGWORLD_SIM_GPU_DELAY_US, microseconds; on in the tests) makes a missing
//     event produce a wrong answer instead of a lucky one;
//   - new allocations hold NaN (the poison pattern), and the write-only outputs of a kernel are
//     poisoned before it runs, so a read of never-written memory or a kernel that leaves part
//     of its output unwritten shows up as NaN;
//   - async copies take only pinned host memory on the host side (as a GPU's truly async copies
//     do), and while one is pending its pinned allocation is inaccessible to host code (a
//     fault), so a staging buffer read, reused or handed to MPI before its event is caught;
//     the synchronous copies take any host memory;
//   - release() of memory that pending work still uses waits for that work (cudaFree waits for
//     the whole device); such waits are counted (stats().release_waits) so code that should
//     keep persistent workspaces can assert it never frees under work.
// The kernels are the CPU backend's (cpu_kernels.h), run on the stream's worker with translated
// pointers, so results are bit-identical to the cpu backend's. The progress hook is called only
// by the host thread while it waits (synchronize, host_wait), never by a worker.
// Capabilities: not host-accessible, no GPU-aware MPI: MPI traffic takes the staging path.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "device/backend.h"
#include "device/cpu/cpu_kernels.h"
#include "device/sim/sim_memory.h"
#include "device/sim/sim_stream.h"

namespace rw::device {

struct SimGpuOptions {
  int max_delay_us = 0;  // random delay before each operation, 0..max_delay_us microseconds
  uint64_t seed = 1;     // of the delays
  std::size_t address_space_bytes = std::size_t(64)
                                    << 30;  // reserved (not committed): the most device memory live at once
  cpu::FwdKernel fwd_kernel = cpu::FwdKernel::automatic;
  // The backend's name, and what runs a kernel on a stream worker once its pointers are
  // translated to the sim's storage: by default "sim-gpu" and the cpu kernels; the emulated GPU
  // backends (device/cuda/emu/emu_backend.h) put the GPU kernels under the SIMT emulation here.
  std::string name = "sim-gpu";
  std::function<void(KernelCall&)> run_kernel;  // empty: cpu::run_kernel
  // What run_kernel runs, for resources_line (empty: the cpu kernels, with their thread counts).
  std::string kernels_description;
  // From RINGWORLD_SIM_GPU_DELAY_US, RINGWORLD_SIM_GPU_SEED and RINGWORLD_SIM_GPU_ADDRESS_SPACE_GB
  // (fatal on a malformed value).
  static SimGpuOptions from_environment();
};

class SimGpuBackend : public Backend {
 public:
  explicit SimGpuBackend(const SimGpuOptions& options = SimGpuOptions::from_environment());
  ~SimGpuBackend() override;
  std::string name() const override { return options_.name; }
  const Capabilities& capabilities() const override { return capabilities_; }
  // The GEMM rate is the generic measurement (its own gemm kernel, through the worker thread).
  std::string resources_line() const override;         // workers, and the kernels (cpu: their threads)
  std::string configuration_warning() const override;  // as cpu's when it runs the cpu kernels

  struct Stats {
    long operations = 0;     // kernels, copies and waits enqueued
    long release_waits = 0;  // releases that had to wait for pending work
    std::size_t live_device_bytes = 0;
  };
  Stats stats() const;
  // Whether p lies in the device address range (for tests and diagnostics).
  bool is_device_pointer(const void* p) const { return memory_.in_device_range(p); }

  // Test hook: stalls `stream` at this point of its work until the gate is opened (open(), or
  // the gate destroyed), so a test can hold work pending deterministically.
  struct GateState;
  class Gate {
   public:
    explicit Gate(std::shared_ptr<GateState> state) : state_(std::move(state)) {}
    Gate(const Gate&) = delete;
    Gate& operator=(const Gate&) = delete;
    ~Gate() { open(); }
    void open();

   private:
    std::shared_ptr<GateState> state_;
  };
  std::unique_ptr<Gate> hold(Stream& stream);

 protected:
  std::unique_ptr<Stream> create_stream_impl() override;
  Stream& default_stream_impl() override { return *default_stream_; }
  std::unique_ptr<Event> create_event_impl() override;
  void record_impl(Event& event, Stream& stream) override;
  void wait_impl(Stream& stream, Event& event) override;
  bool query_impl(Event& event) override;
  void host_wait_impl(Event& event, const ProgressHook& hook) override;
  void synchronize_impl(Stream& stream, const ProgressHook& hook) override;
  void synchronize_all_impl(const ProgressHook& hook) override;
  void* allocate_impl(std::size_t n_bytes, MemoryKind kind) override;
  void release_impl(void* pointer) override;
  void copy_async_impl(void* dst, const void* src, std::size_t n_bytes, Stream& stream) override;
  void copy_sync_impl(void* dst, const void* src, std::size_t n_bytes, CopyDirection direction) override;
  void submit(KernelCall& call, const ProgressHook& hook, Stream& stream) override;

 private:
  class TrackedStream;
  friend class TrackedStream;
  sim::SimStream& sim_stream(Stream& stream);
  sim::SimMemory::Range resolve_device(const void* p, std::size_t n_bytes, const char* op, const char* arg);
  uint64_t enqueue(sim::SimStream& stream, std::function<void()> op);

  SimGpuOptions options_;
  Capabilities capabilities_;
  sim::SimMemory memory_;
  mutable std::mutex streams_mutex_;
  std::set<sim::SimStream*> streams_;  // every live stream (for synchronize_all)
  int next_stream_id_ = 0;
  std::set<void*> host_allocations_;  // MemoryKind::host
  long operations_ = 0;
  std::unique_ptr<Stream> default_stream_;
};

}  // namespace rw::device
