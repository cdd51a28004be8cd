// device_scalar.cpp: see device_scalar.h.
#include "device/device_scalar.h"

namespace rw::device {

DeviceScalar::DeviceScalar(Backend& backend)
    : backend_(backend),
      value_(backend, 1, MemoryKind::device),
      pinned_(backend, 1, MemoryKind::pinned_host),
      copied_(backend.create_event()) {}

void DeviceScalar::zero(Stream& stream) {
  FillArgs f;
  f.x = view();
  f.value = 0.0;
  backend_.fill(f, stream);
}

double DeviceScalar::read(Stream& stream, const ProgressHook& hook) {
  backend_.copy_async(pinned_.data(), value_.data(), sizeof(double), stream);
  backend_.record(*copied_, stream);
  backend_.host_wait(*copied_, hook);
  return pinned_.data()[0];
}

}  // namespace rw::device
