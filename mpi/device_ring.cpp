// device_ring.cpp: see device_ring.h.
#include "mpi/device_ring.h"

#include <memory>

namespace rw::mpi {
namespace {

TransferPath choose(const device::Backend& backend, PathChoice choice, std::string* why) {
  return choose_transfer_path(backend.capabilities(), choice, why);
}

}  // namespace

DeviceRing::DeviceRing(RingTransport& transport, device::Backend& backend, PathChoice choice)
    : transport_(transport),
      transfers_(backend, choose(backend, choice, &path_reason_), transport.timeout_s(), transport.describe_neighbours()) {}

DeviceRing::Request DeviceRing::post_send_next(const void* device_data, std::size_t n_bytes, int tag,
                                               device::Event& ready, const char* what) {
  auto inner = std::make_shared<RingTransport::Request>(RingTransport::kNoRequest);
  RingTransport* t = &transport_;
  MpiOpHooks hooks;
  hooks.post = [t, inner, n_bytes, tag](const void* in, void*) { *inner = t->post_send_next(in, n_bytes, tag); };
  hooks.test = [t, inner] { return t->test(*inner); };
  return transfers_.post(device_data, n_bytes, &ready, nullptr, 0, nullptr, std::move(hooks), what);
}

DeviceRing::Request DeviceRing::post_recv_prev(void* device_data, std::size_t n_bytes, int tag,
                                               device::Event& writable, const char* what) {
  auto inner = std::make_shared<RingTransport::Request>(RingTransport::kNoRequest);
  RingTransport* t = &transport_;
  MpiOpHooks hooks;
  hooks.post = [t, inner, n_bytes, tag](const void*, void* out) { *inner = t->post_recv_prev(out, n_bytes, tag); };
  hooks.test = [t, inner] { return t->test(*inner); };
  return transfers_.post(nullptr, 0, nullptr, device_data, n_bytes, &writable, std::move(hooks), what);
}

void DeviceRing::wait(Request& request, device::Stream* consumer, device::Event* landed) {
  transfers_.wait(request, consumer, landed);
}

void DeviceRing::progress() {
  transport_.progress();
  transfers_.progress();
}

}  // namespace rw::mpi
