// stream.h: the asynchronous vocabulary of the device contract: streams, events, memory kinds
// and a backend's capabilities record.
//
// Streams and events follow CUDA's semantics (so a CUDA/HIP backend maps them one to one):
//   - work (kernels, async copies) enqueued on one stream runs in enqueue order;
//   - work on different streams is unordered unless an event orders it:
//       record(event, s1)  captures all work enqueued on s1 so far;
//       wait(s2, event)    makes work enqueued on s2 afterwards wait for what event captured
//                          (the capture at the time of the wait call; a never-recorded event
//                          is complete);
//   - query(event) says whether the captured work has finished; host_wait(event, hook) and
//     synchronize(stream, hook) block the host until it has, calling hook while they wait.
// Streams and events are created by a backend and used only with that backend; destroying a
// stream lets its pending work finish first.
#pragma once
#include <cstddef>

#include "device/attention_args.h"

namespace rw::device {

class Backend;

// A queue of device work. Backends derive their own; callers hold it by reference.
class Stream {
 public:
  virtual ~Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  const Backend& owner() const { return owner_; }

 protected:
  explicit Stream(const Backend& owner) : owner_(owner) {}

 private:
  const Backend& owner_;
};

// A marker in a stream's work (see above).
class Event {
 public:
  virtual ~Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  const Backend& owner() const { return owner_; }

 protected:
  explicit Event(const Backend& owner) : owner_(owner) {}

 private:
  const Backend& owner_;
};

// Where an allocation lives.
//   device       memory the kernels work on (on a GPU: not readable by host code)
//   pinned_host  host memory the device copies to and from asynchronously: the staging buffers
//                of MPI transfers when device memory is not host-accessible
//   host         ordinary host memory, allocated through the backend for symmetry
enum class MemoryKind { device, pinned_host, host };

const char* memory_kind_name(MemoryKind kind);

// What a backend can do (in the spirit of ggml's ggml_backend_dev_caps): callers choose their
// paths from this record, never from a backend's name.
struct Capabilities {
  // Kernels and async copies may return before the work is done (work runs later, elsewhere).
  // When false, work runs at submission on the calling thread.
  bool async_execution = false;
  // Events order work across streams (record / wait / query / host_wait are meaningful).
  bool events = true;
  // Host code may read and write device memory directly (and hand it to any MPI). When false,
  // only copies reach device memory from the host.
  bool host_accessible_device_memory = false;
  // Device pointers may go to an MPI library that is GPU-aware for this device (CUDA/ROCm-aware
  // MPI); whether this MPI is, is mpi/'s question. When neither this nor
  // host_accessible_device_memory holds, MPI traffic is staged through pinned host buffers.
  bool gpu_aware_mpi_possible = false;
  // pinned_host is distinct memory worth using for staging (async copies need it).
  bool pinned_host_memory = false;
  // Kernels accept bf16 storage (fp32 accumulation), natively or by converting.
  bool bf16_storage = true;
  // bf16 arithmetic units (matrix cores): bf16 is the fast path, not a conversion.
  bool bf16_native = false;
  // Kernels call the progress hook themselves while they run (they run on the calling thread).
  bool kernels_call_progress_hook = false;
  // Alignment of every allocation, bytes.
  std::size_t allocation_alignment_bytes = 64;
  // The VQGAN kernels (vision_args.h: conv2d, group_norm, silu, upsample_nearest2x, vq_nearest,
  // vq_lookup) run here; the GPU backends have none yet and refuse them.
  bool vqgan_kernels = false;
  // Attention tile sizes this backend runs best with (a hint; any positive sizes are correct).
  AttnTiling attn_tiling;
};

}  // namespace rw::device
