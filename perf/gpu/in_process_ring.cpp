// in_process_ring.cpp: see in_process_ring.h.
#include "perf/gpu/in_process_ring.h"

#include <chrono>
#include <cstring>
#include <thread>

#include "src/common/fatal.h"

namespace rw::perf {

InProcessTransport::InProcessTransport(InProcessWire& wire, int rank, Copy copy, device::Backend& backend,
                                       double timeout_s)
    : wire_(wire), rank_(rank), copy_(copy), backend_(backend), timeout_s_(timeout_s) {
  RW_CHECK(rank >= 0 && rank < wire.ranks(), "in-process ring: rank out of range");
  if (copy_ == Copy::device) stream_ = backend_.create_stream();
}

std::string InProcessTransport::describe_neighbours() const {
  const int n = wire_.ranks();
  return " (in-process ring neighbours: rank " + std::to_string((rank_ + n - 1) % n) + " -> rank " +
         std::to_string(rank_) + " -> rank " + std::to_string((rank_ + 1) % n) + ")";
}

void InProcessTransport::copy(void* dst, const void* src, std::size_t n_bytes) {
  if (n_bytes == 0) return;
  if (copy_ == Copy::host) {
    std::memcpy(dst, src, n_bytes);
  } else {
    backend_.copy_async(dst, src, n_bytes, *stream_);
    backend_.synchronize(*stream_);
  }
}

InProcessTransport::Request InProcessTransport::track(std::shared_ptr<std::atomic<bool>> done) {
  const Request id = next_++;
  open_.emplace(id, std::move(done));
  return id;
}

InProcessTransport::Request InProcessTransport::post_send_next(const void* data, std::size_t n_bytes, int tag) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  InProcessWire::Pending match;
  bool matched = false;
  {
    std::lock_guard<std::mutex> lock(wire_.mutex_);
    auto& recvs = wire_.recvs_[{(rank_ + 1) % wire_.ranks(), tag}];
    if (!recvs.empty()) {
      match = recvs.front();
      recvs.pop_front();
      matched = true;
    } else {
      wire_.sends_[{(rank_ + 1) % wire_.ranks(), tag}].push_back({nullptr, data, n_bytes, done, rank_});
    }
  }
  if (matched) {
    RW_CHECK(match.n_bytes == n_bytes, "in-process ring: rank " + std::to_string(rank_) + " sends " +
                                           std::to_string(n_bytes) + " bytes on tag " + std::to_string(tag) +
                                           ", rank " + std::to_string(match.rank) + " expects " +
                                           std::to_string(match.n_bytes));
    copy(match.dst, data, n_bytes);
    match.done->store(true);
    done->store(true);
  }
  return track(done);
}

InProcessTransport::Request InProcessTransport::post_recv_prev(void* data, std::size_t n_bytes, int tag) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  InProcessWire::Pending match;
  bool matched = false;
  {
    std::lock_guard<std::mutex> lock(wire_.mutex_);
    auto& sends = wire_.sends_[{rank_, tag}];
    if (!sends.empty()) {
      match = sends.front();
      sends.pop_front();
      matched = true;
    } else {
      wire_.recvs_[{rank_, tag}].push_back({data, nullptr, n_bytes, done, rank_});
    }
  }
  if (matched) {
    RW_CHECK(match.n_bytes == n_bytes, "in-process ring: rank " + std::to_string(rank_) + " expects " +
                                           std::to_string(n_bytes) + " bytes on tag " + std::to_string(tag) +
                                           ", rank " + std::to_string(match.rank) + " sends " +
                                           std::to_string(match.n_bytes));
    copy(data, match.src, n_bytes);
    match.done->store(true);
    done->store(true);
  }
  return track(done);
}

bool InProcessTransport::test(Request& request) {
  if (request == kNoRequest) return true;
  auto it = open_.find(request);
  RW_CHECK(it != open_.end(), "in-process ring: test of an unknown request");
  if (!it->second->load()) return false;
  open_.erase(it);
  request = kNoRequest;
  return true;
}

void InProcessTransport::wait(Request& request, const char* what) {
  const auto start = std::chrono::steady_clock::now();
  while (!test(request)) {
    std::this_thread::yield();
    if (timeout_s_ > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s_)
      RW_FAIL("rank " + std::to_string(rank_) + ": no progress for " + std::to_string(timeout_s_) +
              " s waiting for the " + what + describe_neighbours());
  }
}

}  // namespace rw::perf
