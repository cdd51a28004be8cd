// exec_context.h: where a component's device work goes. The model, the ring, FSDP and the
// optimizer of one rank share one backend and one compute stream; each component that talks to
// MPI owns its own communication/copy streams and orders them against `compute` with events.
// Contract for everything that takes an ExecContext (see device/README.md, "phase B"):
//   - pointers passed in and out are device pointers of `backend`;
//   - a call enqueues its work so that compute-stream work enqueued after the call returns sees
//     its results (it makes `compute` wait on its own streams' events before returning);
//   - a call may read its inputs asynchronously only in compute-stream order: the caller may
//     overwrite an input with compute-stream kernels enqueued after the call returns.
#pragma once
#include "device/backend.h"

namespace rw::device {

struct ExecContext {
  Backend* backend = nullptr;
  Stream* compute = nullptr;  // the rank's compute stream (backend->default_stream() by default)

  static ExecContext on_default_stream(Backend& b) { return {&b, &b.default_stream()}; }
};

}  // namespace rw::device
