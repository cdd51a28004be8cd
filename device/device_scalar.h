// device_scalar.h: one f64 scalar in device memory that reductions add into (the loss_sum /
// result arguments of kernel_args.h), and the one sync point that brings it to the host:
// read() enqueues a copy into a pinned host slot on a stream and waits for that copy's event
// only (not for the backend's other streams). Allocated once per run (a workspace) and reused.
#pragma once
#include <memory>

#include "device/backend.h"

namespace rw::device {

class DeviceScalar {
 public:
  explicit DeviceScalar(Backend& backend);
  DeviceScalar(const DeviceScalar&) = delete;
  DeviceScalar& operator=(const DeviceScalar&) = delete;

  // The f64 [1] device view reductions add into.
  TensorView view() { return scalar_view(value_.data()); }
  // value = 0, enqueued on `stream`.
  void zero(Stream& stream);
  // The value once the work enqueued on `stream` so far has finished: a stream-ordered copy to
  // pinned host memory, then a host wait for it (hook called while waiting).
  double read(Stream& stream, const ProgressHook& hook = {});

 private:
  Backend& backend_;
  DeviceArray<double> value_;   // device
  DeviceArray<double> pinned_;  // pinned host: the host reads it only after `copied_`
  std::unique_ptr<Event> copied_;
};

}  // namespace rw::device
